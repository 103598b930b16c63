"""The reported figures: which raw measurement each comes from, its unit, and which way is better.

A metric turns one framework's raw scenario result into a summary (median, p10, p90, n). Ratios
are always *this framework's value / PyFlue's value*, whichever way is better, so the reader checks
one rule per row (``better``) instead of one per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .stats import summarise

__all__ = ["METRICS", "Metric", "NotApplicable", "evaluate"]

Raw = dict[str, Any]
Summary = dict[str, Any]


class NotApplicable(LookupError):
    """The metric does not apply to this entry (the import floor has no first answer): no cell."""


@dataclass(frozen=True)
class Metric:
    key: str
    scenario: str
    title: str
    unit: str
    better: Literal["lower", "higher"]
    extract: Callable[[Raw], Summary]
    pyflue_only: bool = False


def _pooled(raw: Raw, field: str) -> list[float]:
    """``field``'s samples from every round (each round is a new process), in one list."""
    return [value for round_ in raw["rounds"] for value in round_[field]]


def _samples(field: str, scale: float = 1.0) -> Callable[[Raw], Summary]:
    return lambda raw: summarise(_pooled(raw, field), scale)


def _per_conversation(field: str, count: str = "n") -> Callable[[Raw], Summary]:
    """One measurement per round over that round's conversations: the spread is across rounds, and
    the smallest conversation count says how far to trust it (RSS moves in 4 KiB pages, so a few
    hundred conversations give a coarse figure)."""

    def extract(raw: Raw) -> Summary:
        rounds = raw["rounds"]
        return {
            **summarise([round_[field] for round_ in rounds]),
            "conversations": min(round_[count] for round_ in rounds),
        }

    return extract


def _per_delta(raw: Raw) -> Summary:
    return summarise(_pooled(raw, "samples_us"), 1.0 / raw["rounds"][0]["deltas"])


def _throughput(size: int) -> Callable[[Raw], Summary]:
    def extract(raw: Raw) -> Summary:
        # bytes/µs = MB/s
        return summarise([r["bytes"] / us for r in raw["rounds"] for us in r[f"samples_us_{size}"]])

    return extract


def _startup(field: str, scale: float, requires: str = "") -> Callable[[Raw], Summary]:
    """A figure of each startup process (``requires``: only those that got that far, e.g. an answer)."""

    def extract(raw: Raw) -> Summary:
        values = [run[field] for run in raw["rounds"] if field in run and (not requires or requires in run)]
        if not values:
            raise NotApplicable(field)
        return summarise(values, scale)

    return extract


METRICS: tuple[Metric, ...] = (
    Metric(
        "import_ms",
        "startup",
        "import, as users write it (new process)",
        "ms",
        "lower",
        _startup("import_s", 1e3),
    ),
    Metric(
        "import_rss_mb",
        "startup",
        "peak RSS after the import",
        "MB",
        "lower",
        _startup("import_peak_rss", 1e-6),
    ),
    Metric(
        "first_answer_ms",
        "startup",
        "new process to first answer (wall)",
        "ms",
        "lower",
        _startup("process_wall_s", 1e3, requires="first_answer_s"),
    ),
    Metric("text_us", "text", "one prompt, text answer", "µs", "lower", _samples("samples_us")),
    Metric("tool_us", "tool", "one prompt, one tool call", "µs", "lower", _samples("samples_us")),
    Metric("stream_us", "stream", "200 streamed deltas, per run", "µs", "lower", _samples("samples_us")),
    Metric("delta_us", "stream", "200 streamed deltas, per delta", "µs", "lower", _per_delta),
    Metric(
        "memory_rss_b",
        "memory",
        "RSS per retained conversation",
        "B",
        "lower",
        _per_conversation("rss_bytes_per_conversation"),
    ),
    Metric(
        "memory_traced_b",
        "memory",
        "tracemalloc bytes per retained conversation",
        "B",
        "lower",
        _per_conversation("traced_bytes_per_conversation", "n_traced"),
    ),
    Metric(
        "concurrent_pps",
        "concurrent",
        "concurrent sessions throughput",
        "prompts/s",
        "higher",
        _samples("prompts_per_s"),
    ),
    Metric(
        "workflow_us",
        "workflow",
        "workflow run overhead (SQLite run store)",
        "µs",
        "lower",
        _samples("run_samples_us"),
        pyflue_only=True,
    ),
    Metric(
        "events_per_s",
        "workflow",
        "persisted run events",
        "events/s",
        "higher",
        _samples("events_per_s"),
        pyflue_only=True,
    ),
    Metric(
        "append_10_us",
        "session_append",
        "session append, 10 messages",
        "µs",
        "lower",
        _samples("append_samples_us_10"),
        pyflue_only=True,
    ),
    Metric(
        "append_1000_us",
        "session_append",
        "session append, 1 000 messages",
        "µs",
        "lower",
        _samples("append_samples_us_1000"),
        pyflue_only=True,
    ),
    Metric(
        "prompt_10_us",
        "session_append",
        "prompt on a SQLite session, 10 messages",
        "µs",
        "lower",
        _samples("prompt_samples_us_10"),
        pyflue_only=True,
    ),
    Metric(
        "prompt_1000_us",
        "session_append",
        "prompt on a SQLite session, 1 000 messages",
        "µs",
        "lower",
        _samples("prompt_samples_us_1000"),
        pyflue_only=True,
    ),
    Metric(
        "sse_1400_mbs",
        "sse",
        "SSE parse, 1.4 KB chunks",
        "MB/s",
        "higher",
        _throughput(1400),
        pyflue_only=True,
    ),
    Metric(
        "sse_16k_mbs",
        "sse",
        "SSE parse, 16 KB chunks",
        "MB/s",
        "higher",
        _throughput(16384),
        pyflue_only=True,
    ),
)


def evaluate(raw: dict[str, dict[str, Raw]]) -> dict[str, dict[str, Summary]]:
    """``raw[scenario][framework]`` → ``figures[metric][framework]``, with ratios to PyFlue."""
    figures: dict[str, dict[str, Summary]] = {}
    for metric in METRICS:
        row: dict[str, Summary] = {}
        for framework, result in raw.get(metric.scenario, {}).items():
            if result.get("status") != "ok":
                row[framework] = {k: v for k, v in result.items() if k in ("status", "reason", "error")}
                continue
            try:
                row[framework] = {"status": "ok", **metric.extract(result)}
            except NotApplicable:
                continue
            except (KeyError, ZeroDivisionError, ValueError) as exc:
                row[framework] = {"status": "error", "error": f"cannot summarise: {exc!r}"}
        base = row.get("pyflue", {})
        for summary in row.values():
            if summary.get("status") == "ok" and base.get("status") == "ok" and base["median"]:
                summary["ratio_to_pyflue"] = summary["median"] / base["median"]
        if row:
            figures[metric.key] = row
    _add_import_vs_floor(figures)
    return figures


def _add_import_vs_floor(figures: dict[str, dict[str, Summary]]) -> None:
    """``import X`` median over the floor's median (``import pydantic, httpx, anyio``), same run."""
    imports = figures.get("import_ms", {})
    floor = imports.get("floor", {})
    if floor.get("status") != "ok":
        return
    figures["import_vs_floor"] = {
        name: {"status": "ok", "median": s["median"] / floor["median"], "n": s["n"]}
        for name, s in imports.items()
        if s.get("status") == "ok" and name != "floor"
    }
