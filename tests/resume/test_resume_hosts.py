"""Resumed runs of a workflow whose agent talks to a provider over HTTP (a local wire server counts
the requests) and delegates to a subagent through the ``task`` tool: killed with SIGKILL at a step
boundary in one process group ("host A", its own copy of the project), resumed from another ("host
B", another copy), on SQLite and on PostgreSQL. The resumed result is the uninterrupted one, no
model request with a recorded result is made again, a non-idempotent tool never runs twice, and
the killed run's log holds the events of every step its journal recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from pyflue.stores.runs import JournalStep

from ._hosts import Hosts
from ._provider import Provider


def _check_log_holds_every_recorded_step(journal: list[JournalStep], events: list[Any]) -> None:
    """Each recorded step was written with the events before it: a model step's ``model_end``, a
    tool step's ``tool_end``, are in the killed run's log."""
    done = [s for s in journal if s.status == "done"]
    ends = Counter(e.data["tool"] for e in events if e.type == "tool_end")
    for tool, count in Counter(s.name for s in done if s.kind == "tool").items():
        assert ends[tool] >= count, (tool, ends, done)
    assert sum(1 for e in events if e.type == "model_end") >= sum(1 for s in done if s.kind == "model")


@pytest.mark.parametrize("gate", ["lookup:hotel:after", "between:1", "book:hotel:after"])
def test_a_run_killed_on_one_host_resumes_on_another(
    hosts: Callable[[str], Hosts], provider: Provider, gate: str, baseline: tuple[dict[str, Any], int]
) -> None:
    expected, expected_requests = baseline
    pair = hosts(gate.replace(":", "-"))
    before = len(provider.requests)
    pair.kill_at("run-h", gate)
    journal, events = pair.read("run-h")
    _check_log_holds_every_recorded_step(journal, events)
    # The subagent's model calls and its verify call are steps inside the parent's task call.
    task = next(s for s in journal if s.kind == "tool" and s.name == "task")
    inner = [s for s in journal if s.step.startswith(task.step + ".")]
    assert [(s.kind, s.name, s.status) for s in inner] == [
        ("model", "openai/gpt-4.1-mini", "done"),
        ("tool", "verify", "done"),
        ("model", "openai/gpt-4.1-mini", "done"),
    ]
    assert task.status == "done"

    record = pair.finish(pair.start("resume", pair.b, "run-h"))

    assert record["status"] == "completed", record
    # Every request was made once: none with a recorded result again (none was in flight at a tool).
    assert len(provider.requests) - before == expected_requests
    if gate == "book:hotel:after":
        # The booking ran and its process died before it recorded a result: not idempotent, so it
        # is not run again, and the model is told its outcome is unknown.
        assert "StepOutcomeUnknownError" in record["result"]["first"]
        assert pair.lines("side_effects") == ["book hotel"]
        return
    assert record["result"] == expected["result"]
    assert pair.lines("side_effects") == ["book hotel"]
    # The subagent's verify call was replayed; the idempotent lookup ran again only when cut short.
    assert pair.lines("verifies") == ["hotel"]
    assert pair.lines("lookups") == (["hotel", "hotel"] if gate == "lookup:hotel:after" else ["hotel"])
    assert record["usage"]["requests"] == expected["usage"]["requests"]
    journal, events = pair.read("run-h")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.data["status"] for e in events if e.type == "run_end"] == ["interrupted", "completed"]


def test_a_run_killed_inside_a_subagent_task_reruns_the_task_replaying_its_finished_steps(
    hosts: Callable[[str], Hosts], provider: Provider, baseline: tuple[dict[str, Any], int]
) -> None:
    expected, expected_requests = baseline
    pair = hosts("verify-hotel-after")
    before = len(provider.requests)
    pair.kill_at("run-h", "verify:hotel:after")
    journal, _ = pair.read("run-h")
    task = next(s for s in journal if s.kind == "tool" and s.name == "task")
    assert task.status == "started"  # cut short inside the subagent: its outcome is unknown
    inner = [(s.kind, s.name, s.status) for s in journal if s.step.startswith(task.step + ".")]
    assert inner == [("model", "openai/gpt-4.1-mini", "done"), ("tool", "verify", "started")]

    record = pair.finish(pair.start("resume", pair.b, "run-h"))

    assert record["status"] == "completed", record
    # The task tool is idempotent, so it ran again: its first model call replayed from the journal
    # (no request made twice), the cut-short verify ran again (it is idempotent too).
    assert record["result"] == expected["result"]
    assert len(provider.requests) - before == expected_requests
    assert pair.lines("verifies") == ["hotel", "hotel"]
    assert pair.lines("side_effects") == ["book hotel"]
