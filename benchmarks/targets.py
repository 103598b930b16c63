"""The goals the new PyFlue is held to, checked against each run's figures.

Relative goals compare PyFlue with the *best* peer on that row (PyFlue 0.2.0 included), so a
target is only met by beating every framework a user might pick instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TARGETS", "Target", "check"]

Figures = dict[str, dict[str, dict[str, Any]]]
_NOT_PEERS = ("pyflue", "pyflue-bare", "floor")


@dataclass(frozen=True)
class Target:
    metric: str
    text: str
    kind: Literal["vs_best_peer", "absolute", "flatness"]
    limit: float
    better: Literal["lower", "higher"]
    other: str = ""  # flatness: the metric at the small size
    min_conversations: int = 0  # memory: ignore figures measured over fewer conversations (too coarse)


TARGETS: tuple[Target, ...] = (
    Target("import_ms", "import as users write it ≤ 0.5x best peer", "vs_best_peer", 0.5, "lower"),
    Target(
        "import_vs_floor",
        "import as users write it ≤ 1.3x the floor (`import pydantic, httpx, anyio`)",
        "absolute",
        1.3,
        "lower",
    ),
    Target("text_us", "text prompt ≤ 0.3x best peer", "vs_best_peer", 0.3, "lower"),
    Target("tool_us", "tool prompt ≤ 0.3x best peer", "vs_best_peer", 0.3, "lower"),
    Target("delta_us", "per streamed delta ≤ 0.5x best peer", "vs_best_peer", 0.5, "lower"),
    Target(
        "memory_rss_b",
        "RSS per conversation ≤ 0.5x best peer",
        "vs_best_peer",
        0.5,
        "lower",
        min_conversations=500,
    ),
    Target(
        "memory_traced_b", "allocated bytes per conversation ≤ 0.5x best peer", "vs_best_peer", 0.5, "lower"
    ),
    Target("concurrent_pps", "concurrent throughput ≥ 2x best peer", "vs_best_peer", 2.0, "higher"),
    Target("sse_1400_mbs", "SSE parse ≥ 50 MB/s (1.4 KB chunks)", "absolute", 50.0, "higher"),
    Target("sse_16k_mbs", "SSE parse ≥ 50 MB/s (16 KB chunks)", "absolute", 50.0, "higher"),
    Target(
        "append_1000_us",
        "session append flat: 1 000 msgs ≤ 1.5x 10 msgs",
        "flatness",
        1.5,
        "lower",
        other="append_10_us",
    ),
)


def _usable(cell: dict[str, Any], target: Target | None = None) -> bool:
    if cell.get("status") != "ok":
        return False
    return target is None or cell.get("conversations", target.min_conversations) >= target.min_conversations


def _median(figures: Figures, metric: str, framework: str, target: Target | None = None) -> float | None:
    cell = figures.get(metric, {}).get(framework, {})
    return cell["median"] if _usable(cell, target) else None


def check(figures: Figures) -> list[dict[str, Any]]:
    """One line per target: the measured value, what it was compared with, and whether it is met."""
    lines: list[dict[str, Any]] = []
    for target in TARGETS:
        mine = _median(figures, target.metric, "pyflue", target)
        line: dict[str, Any] = {"target": target.text, "metric": target.metric, "met": None}
        lines.append(line)
        if mine is None:
            line["note"] = "PyFlue figure not available"
            continue
        if target.kind == "absolute":
            value, line["against"] = mine, "absolute"
        elif target.kind == "flatness":
            small = _median(figures, target.other, "pyflue")
            if not small:
                line["note"] = "no small-size figure"
                continue
            value, line["against"] = mine / small, target.other
        else:
            peers = {
                name: cell["median"]
                for name, cell in figures.get(target.metric, {}).items()
                if name not in _NOT_PEERS and _usable(cell, target)
            }
            if not peers:
                line["note"] = "no peer figure"
                continue
            pick = min if target.better == "lower" else max
            best = pick(peers, key=peers.__getitem__)
            value, line["against"] = mine / peers[best], best
        line["value"] = value
        line["met"] = value <= target.limit if target.better == "lower" else value >= target.limit
    return lines
