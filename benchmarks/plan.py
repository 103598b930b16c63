"""What each scenario measures and with how many runs, in full and in ``--quick`` mode.

Timed scenarios stop at a time budget as well as a run count, so a slow framework gets fewer
samples rather than stretching ``--quick`` (about one minute once the venvs exist) past its budget.
A scenario runs in several rounds (new processes, interleaved with the other frameworks' rounds, see
docs/decisions/0015-benchmark-method.md); :func:`per_round` splits its runs and budget between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["COMPARED", "PYFLUE_ONLY", "ROUNDS", "SCENARIOS", "Scenario", "params_for", "per_round"]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    pyflue_only: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("startup", "import, and a new process to its first answer"),
    Scenario("text", "one prompt, text answer"),
    Scenario("tool", "one prompt, one tool call then the answer"),
    Scenario("stream", "one prompt streaming 200 text deltas"),
    Scenario("memory", "memory per retained conversation"),
    Scenario("concurrent", "concurrent sessions, prompts per second"),
    Scenario("workflow", "workflow run overhead and persisted events (SQLite run store)", pyflue_only=True),
    Scenario("session_append", "session append cost at 10 and 1 000 messages (SQLite)", pyflue_only=True),
    Scenario("sse", "SSE parse throughput (Anthropic stream events)", pyflue_only=True),
)
COMPARED = tuple(s.name for s in SCENARIOS if not s.pyflue_only)
PYFLUE_ONLY = tuple(s.name for s in SCENARIOS if s.pyflue_only)

_FULL: dict[str, dict[str, Any]] = {
    "startup": {"runs": 7, "warmup": 1, "analysis_runs": 5},
    "text": {"warmup": 50, "min_runs": 100, "max_runs": 3000, "budget_s": 5.0},
    "tool": {"warmup": 50, "min_runs": 100, "max_runs": 3000, "budget_s": 5.0},
    "stream": {"warmup": 10, "min_runs": 30, "max_runs": 1000, "budget_s": 5.0, "deltas": 200},
    "memory": {"conversations": 5000, "budget_s": 30.0, "warmup": 50},
    "concurrent": {"sessions": 100, "prompts": 10, "repeats": 5, "budget_s": 20.0},
    "workflow": {"warmup": 20, "min_runs": 50, "max_runs": 2000, "budget_s": 5.0, "events": 1000},
    "session_append": {"warmup": 20, "min_runs": 50, "max_runs": 2000, "budget_s": 3.0},
    "sse": {"warmup": 3, "min_runs": 15, "max_runs": 200, "budget_s": 3.0, "sse_deltas": 8000},
}

_QUICK: dict[str, dict[str, Any]] = {
    "startup": {"runs": 1, "warmup": 0, "analysis_runs": 1},
    "text": {"warmup": 10, "min_runs": 15, "max_runs": 1000, "budget_s": 0.4},
    "tool": {"warmup": 10, "min_runs": 15, "max_runs": 1000, "budget_s": 0.4},
    "stream": {"warmup": 3, "min_runs": 8, "max_runs": 300, "budget_s": 0.4, "deltas": 200},
    "memory": {"conversations": 500, "budget_s": 1.0, "warmup": 20},
    "concurrent": {"sessions": 20, "prompts": 3, "repeats": 1, "budget_s": 0.0},
    "workflow": {"warmup": 5, "min_runs": 15, "max_runs": 500, "budget_s": 0.6, "events": 200},
    "session_append": {"warmup": 5, "min_runs": 15, "max_runs": 500, "budget_s": 0.4},
    "sse": {"warmup": 1, "min_runs": 5, "max_runs": 50, "budget_s": 0.6, "sse_deltas": 8000},
}


# Rounds of every scenario but startup (whose new processes are its rounds: ``runs`` + ``warmup``).
ROUNDS = {"full": 3, "quick": 1}
# Divided between the rounds; everything else (warm-up, sizes, conversation counts) holds per round.
_SPLIT = ("min_runs", "max_runs", "budget_s", "repeats")


def params_for(scenario: str, quick: bool) -> dict[str, Any]:
    return dict((_QUICK if quick else _FULL)[scenario])


def per_round(params: dict[str, Any], rounds: int) -> dict[str, Any]:
    """One round's share of a scenario's runs and time budget (counts rounded up, at least one)."""
    share = dict(params)
    for key in _SPLIT:
        if key in share:
            value = share[key] / rounds
            share[key] = value if isinstance(share[key], float) else max(1, -(-share[key] // rounds))
    return share
