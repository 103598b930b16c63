"""Scenarios only PyFlue has: the SSE parser, session persistence, workflow runs and their events.

Peers have no equivalent (or none comparable), so these report absolute figures against targets:
SSE parsing >= 50 MB/s, and a session append whose cost does not grow with the history.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from probes import NotAvailable, time_runs

Params = dict[str, Any]


def _timing(params: Params) -> dict[str, Any]:
    return {key: params[key] for key in ("warmup", "min_runs", "max_runs", "budget_s")}


def anthropic_stream(deltas: int) -> bytes:
    """An Anthropic Messages stream as it comes off the wire: ``deltas`` short text deltas."""

    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    }
    out = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    words = ("The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog, ", "again. ")
    for i in range(deltas):
        if i % 50 == 49:
            out.append('event: ping\ndata: {"type": "ping"}\n\n')
        delta = {"type": "text_delta", "text": words[i % len(words)] * (1 + i % 3)}
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": deltas},
            },
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return "".join(out).encode()


async def sse(params: Params) -> dict[str, Any]:
    """``parse_all`` over a ~1 MB stream cut into network-sized chunks (arbitrary byte boundaries)."""
    from pyflue.models.sse import parse_all

    body = anthropic_stream(int(params["sse_deltas"]))
    expected = len(parse_all([body]))
    result: dict[str, Any] = {"bytes": len(body), "events": expected}
    for size in (1400, 16384):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]

        async def run(chunks: list[bytes] = chunks) -> None:
            if len(parse_all(chunks)) != expected:
                raise AssertionError("chunking changed the events")

        result[f"samples_us_{size}"] = await time_runs(run, **_timing(params))
    return result


def _messages(n: int) -> list[Any]:
    from pyflue.models.messages import AssistantMessage, TextPart, UserMessage

    return [
        UserMessage([TextPart(f"question {i}")])
        if i % 2 == 0
        else AssistantMessage([TextPart(f"answer {i}")])
        for i in range(n)
    ]


async def session_append(params: Params) -> dict[str, Any]:
    """The cost of persisting one turn (user + assistant message) to the SQLite session store, and of
    a whole prompt on a SQLite-backed session, at a history of 10 and of 1 000 messages."""
    from pyflue import init
    from pyflue.models.testing import FunctionModel
    from pyflue.stores.sessions import SessionKey
    from pyflue.stores.sqlite import SQLiteSessionStore

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteSessionStore(Path(tmp) / "bench.db")
        harness = await init(model=FunctionModel(lambda request: "done"), session_store=store, id="append")
        turn = _messages(2)
        for size in (10, 1000):
            key = SessionKey("bench", "append", f"store-{size}")
            await store.append(key, _messages(size))

            async def append(key: SessionKey = key) -> None:
                await store.append(key, turn)

            result[f"append_samples_us_{size}"] = await time_runs(append, **_timing(params))
            await store.append(SessionKey(harness.name, harness.id, f"prompt-{size}"), _messages(size))
            session = await harness.session(f"prompt-{size}")

            async def prompt(session: Any = session) -> None:
                await session.prompt("hello")

            result[f"prompt_samples_us_{size}"] = await time_runs(prompt, **_timing(params))
    return result


_WORKFLOWS = {
    "noop": "async def run(ctx):\n    return {'ok': True}\n",
    "emit": (
        "async def run(ctx):\n"
        "    for i in range(ctx.payload['events']):\n"
        "        ctx.emit('tick', {'i': i})\n"
        "    return {'emitted': ctx.payload['events']}\n"
    ),
}


async def workflow(params: Params) -> dict[str, Any]:
    """A workflow run that does nothing (the run's own cost: record, run_start, run_end, final
    record, all in the project's SQLite run store), and one that emits ``events`` custom events,
    which the run persists before ``invoke_workflow`` returns."""
    try:
        from pyflue import Project, invoke_workflow
        from pyflue.runs import iter_events
    except ImportError as exc:
        raise NotAvailable(f"workflows are not in the core yet ({exc})") from None

    events = int(params["events"])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "workflows").mkdir()
        for name, source in _WORKFLOWS.items():
            (Path(tmp) / "workflows" / f"{name}.py").write_text(source)
        project = Project.load(tmp)
        last: list[Any] = []

        async def run(name: str, payload: dict[str, Any]) -> None:
            record = await invoke_workflow(project, name, payload)
            if record.status != "completed":
                raise AssertionError(f"run {record.run_id} ended {record.status}: {record.error}")
            last[:] = [record]

        noop = await time_runs(lambda: run("noop", {}), **_timing(params))
        emit = await time_runs(lambda: run("emit", {"events": events}), **_timing(params))
        stored = [e async for e in iter_events(last[0].run_id, follow=False, store=project.run_store)]
        if sum(1 for e in stored if e.type == "tick") != events:
            raise AssertionError(f"{len(stored)} events stored, expected {events} ticks")
    # Every persisted event of the emitting run: the ticks plus run_start and run_end.
    return {
        "run_samples_us": noop,
        "events_per_s": [len(stored) / (us / 1e6) for us in emit],
        "events": events,
    }


SCENARIOS: dict[str, Callable[[Params], Awaitable[dict[str, Any]]]] = {
    "sse": sse,
    "session_append": session_append,
    "workflow": workflow,
}
