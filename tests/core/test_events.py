"""Events: the envelope, seq and correlation ids, observers that raise or are slow (sync and async),
process-wide observers, and hypothesis properties of the event stream of random tool-call scripts."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue import Event, EventBus, define_tool, init, observe, unobserve
from pyflue.events import EventModel
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
)
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.session import PromptResult
from pyflue.stores.memory import MemorySessionStore

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@define_tool
async def lookup(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped"}


async def harness_with(observer: Any = None, **config: Any) -> Any:
    config.setdefault("model", TestModel())
    return await init(session_store=MemorySessionStore(), on_event=observer, **config)


# -- the envelope ----------------------------------------------------------------------------------


async def test_envelope_fields_and_payloads() -> None:
    events: list[Event] = []
    harness = await harness_with(events.append, tools=[lookup], id="case-42", name="support")
    res = await (await harness.session("billing")).prompt("Where is order 7?")

    types = [e.type for e in events]
    assert types[0] == "operation_start" and types[-1] == "operation_end"
    assert types.count("model_start") == types.count("model_end") == 2
    assert types.count("tool_start") == types.count("tool_end") == 1
    for event in events:
        assert (event.agent, event.instance_id, event.session_id) == ("support", "case-42", "billing")
        assert event.operation_id == res.operation_id
        assert event.run_id is None and event.parent_id is None
        assert ULID.match(event.event_id)
        assert datetime.fromisoformat(event.ts).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        dumped = json.loads(event.model_dump_json())
        assert set(dumped) == set(EventModel.model_fields)
        assert Event.model_validate_json(event.model_dump_json()) == event
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)

    by_type = {e.type: e.data for e in events}
    assert by_type["operation_start"] == {"kind": "prompt", "input": "Where is order 7?"}
    end = by_type["operation_end"]
    assert end["status"] == "completed" and end["text"] == res.text
    assert end["usage"] == res.usage.to_dict() and end["duration_ms"] >= 0
    assert by_type["model_start"] == {"provider": "test", "model": "test", "settings": {}}
    model_end = by_type["model_end"]
    assert set(model_end) == {"response_id", "response_model", "finish_reason", "usage", "duration_ms"}
    assert model_end["finish_reason"] == "stop" and model_end["usage"]["requests"] == 1
    start = next(e for e in events if e.type == "tool_start")
    assert start.data == {"tool": "lookup", "call_id": "call_0_0", "args": {"order_id": "a"}}
    tool_end = next(e for e in events if e.type == "tool_end")
    assert tool_end.data["call_id"] == "call_0_0"
    assert json.loads(tool_end.data["result"]) == {"order_id": "a", "status": "shipped"}
    deltas = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert deltas == res.text


async def test_image_input_is_summarised_not_copied() -> None:
    events: list[Event] = []
    session = await (await harness_with(events.append)).session()
    await session.prompt([{"type": "text", "text": "What is this?"}, {"type": "image", "data": b"x" * 1000}])
    assert events[0].data["input"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "data": "<1000 bytes>"},
    ]
    assert len(events[0].model_dump_json()) < 1000
    # Part objects are described the same way, never by a repr of their bytes.
    await session.prompt([TextPart("And this?"), ImagePart("image/png", data=b"y" * 100_000)])
    assert events[-1].type == "operation_end"
    start = [e for e in events if e.type == "operation_start"][-1]
    assert start.data["input"] == [
        {"type": "text", "text": "And this?"},
        {"type": "image", "mime_type": "image/png", "data": "<100000 bytes>"},
    ]
    assert len(start.model_dump_json()) < 1000


async def test_seq_is_per_instance_and_strictly_increasing_across_sessions() -> None:
    events: list[Event] = []
    one = await harness_with(events.append, tools=[lookup], id="one")
    other_events: list[Event] = []
    two = await harness_with(other_events.append, id="two")
    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "c"):
            tg.start_soon((await one.session(name)).prompt, "go")
        tg.start_soon((await two.session()).prompt, "go")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.session_id for e in events} == {"a", "b", "c"}
    assert len({e.operation_id for e in events}) == 3
    assert [e.seq for e in other_events] == list(range(1, len(other_events) + 1))


async def test_bus_counts_seq_even_when_nobody_listens() -> None:
    harness = await harness_with()
    await (await harness.session()).prompt("quiet")
    assert harness.bus.seq >= 4
    events: list[Event] = []
    harness.bus.subscribe(events.append)
    before = harness.bus.seq
    await (await harness.session()).prompt("loud")
    assert events[0].seq == before + 1


# -- observers -------------------------------------------------------------------------------------


async def test_a_raising_observer_never_breaks_the_operation(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def sync_broken(event: Event) -> None:
        calls.append("sync:" + event.type)
        raise RuntimeError("observer bug")

    async def async_broken(event: Event) -> None:
        calls.append("async:" + event.type)
        raise ValueError("async observer bug")

    good: list[Event] = []
    harness = await harness_with(sync_broken, tools=[lookup])
    harness.bus.subscribe(async_broken)
    harness.bus.subscribe(good.append)
    with caplog.at_level(logging.ERROR, logger="pyflue.events"):
        res = await (await harness.session()).prompt("go")
        await (await harness.session()).prompt("again")
    assert res.text
    sync_calls = [c for c in calls if c.startswith("sync:")]
    async_calls = [c for c in calls if c.startswith("async:")]
    assert len(sync_calls) == len(async_calls) == len(good)  # every event reached every observer
    assert [c.split(":")[1] for c in async_calls] == [e.type for e in good]
    raised = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(raised) == 2  # logged once per observer, not once per event


async def test_a_slow_async_observer_does_not_block_or_reorder_the_operation() -> None:
    seen: list[Event] = []
    released = anyio.Event()

    async def slow(event: Event) -> None:
        if not seen:
            await released.wait()  # held until the operation itself is well under way
        await anyio.sleep(0.001)
        seen.append(event)

    @define_tool
    async def release_observer() -> str:
        """Only runs if the operation was not blocked by the observer."""
        released.set()
        return "released"

    direct: list[Event] = []
    harness = await harness_with(slow, tools=[release_observer])
    harness.bus.subscribe(direct.append)
    with anyio.fail_after(5):
        await (await harness.session()).prompt("go")
    assert seen == direct  # everything delivered, in order, before prompt() returned
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)


async def test_a_stuck_observer_delays_the_end_by_at_most_the_drain_timeout() -> None:
    calls: list[str] = []

    async def stuck(event: Event) -> None:
        calls.append(event.type)
        await anyio.sleep_forever()

    harness = await harness_with(stuck)
    harness.bus.drain_timeout = 0.1
    started = anyio.current_time()
    with anyio.fail_after(5):
        res = await (await harness.session()).prompt("go")
    assert res.text == "success (no tool calls)"
    assert anyio.current_time() - started < 2
    assert calls == ["operation_start"]


async def test_async_observer_with_concurrent_operations_gets_each_event_once_in_order() -> None:
    seen: list[int] = []
    inside = {"n": 0, "max": 0}

    async def observer(event: Event) -> None:
        inside["n"] += 1
        inside["max"] = max(inside["max"], inside["n"])
        await anyio.sleep(0.001)
        seen.append(event.seq)
        inside["n"] -= 1

    harness = await harness_with(observer, tools=[lookup])
    sessions = [await harness.session(f"s{i}") for i in range(4)]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(session.prompt, "go")
    assert seen == list(range(1, harness.bus.seq + 1))  # none lost (operation_end included), in order
    assert inside["max"] == 1  # calls never overlap


async def test_callable_objects_sync_and_async() -> None:
    class Sync:
        def __init__(self) -> None:
            self.types: list[str] = []

        def __call__(self, event: Event) -> None:
            self.types.append(event.type)

    class Async:
        def __init__(self) -> None:
            self.types: list[str] = []

        async def __call__(self, event: Event) -> None:
            await anyio.lowlevel.checkpoint()
            self.types.append(event.type)

    sync, async_ = Sync(), Async()
    harness = await harness_with(sync)
    harness.bus.subscribe(async_)
    await (await harness.session()).prompt("go")
    assert sync.types == async_.types
    assert sync.types[0] == "operation_start" and sync.types[-1] == "operation_end"
    harness.bus.unsubscribe(async_)
    await (await harness.session()).prompt("again")
    assert len(sync.types) == 2 * len(async_.types)


async def test_process_wide_observe_sees_every_instance() -> None:
    sync_seen: list[Event] = []
    async_seen: list[Event] = []

    async def async_observer(event: Event) -> None:
        async_seen.append(event)

    observe(sync_seen.append)
    observe(async_observer)
    try:
        one = await harness_with(id="p-one")
        two = await harness_with(id="p-two")
        await (await one.session()).prompt("a")
        await (await two.session()).prompt("b")
    finally:
        unobserve(sync_seen.append)
        unobserve(async_observer)
    assert {e.instance_id for e in sync_seen} == {"p-one", "p-two"}
    assert [e.event_id for e in async_seen] == [e.event_id for e in sync_seen]
    count = len(sync_seen)
    await (await one.session()).prompt("after")
    assert len(sync_seen) == count


async def test_stream_events_are_the_observers_events() -> None:
    observed: list[Event] = []
    session = await (await harness_with(observed.append, tools=[lookup])).session()
    items = [i async for i in session.stream("go")]
    assert isinstance(items[-1], PromptResult)
    assert items[:-1] == observed


def test_bus_without_operations() -> None:
    bus = EventBus(run_id="workflow:w:01ARZ3NDEKTSV4RRFFQ69G5FAV")
    got: list[Event] = []
    bus.subscribe(got.append)
    first = bus.emit("log", {"level": "info", "message": "hi", "fields": {}})
    second = bus.emit("log", {"level": "info", "message": "again", "fields": {}})
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert got == [first, second]
    assert first.run_id == "workflow:w:01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert first.timestamp <= second.timestamp


# -- hypothesis: the event stream of random tool-call scripts --------------------------------------

TOOLS = ["ok", "fail", "slow", "missing"]
scripts = st.lists(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=4), max_size=4)


@define_tool
async def ok(n: int) -> int:
    """Returns n."""
    return n


@define_tool
async def fail(n: int) -> int:
    """Always raises."""
    raise RuntimeError(f"fail {n}")


@define_tool
async def slow(n: int) -> int:
    """Yields to the loop a few times."""
    for _ in range(n % 3 + 1):
        await anyio.lowlevel.checkpoint()
    return n


def scripted(turns: list[list[str]]) -> FunctionModel:
    def respond(request: ModelRequest) -> ModelResponse | str:
        done = sum(1 for m in request.messages if isinstance(m, AssistantMessage))
        if done >= len(turns):
            return "final"
        parts = [ToolCallPart(f"t{done}-{i}", name, {"n": i}) for i, name in enumerate(turns[done])]
        return ModelResponse(parts, Usage(requests=1), "tool_calls")  # type: ignore[arg-type]

    return FunctionModel(respond)


def check_well_nested(events: list[Event], turns: list[list[str]], *, alone: bool = True) -> None:
    assert events[0].type == "operation_start" and events[-1].type == "operation_end"
    assert events[-1].data["status"] == "completed"
    seqs = [e.seq for e in events]
    if alone:  # the only operation on its bus: its events are numbered without gaps
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    else:
        assert seqs == sorted(set(seqs))
    assert len({e.operation_id for e in events}) == 1
    in_model = False
    open_tools: dict[str, Event] = {}
    turn = -1
    for event in events[1:-1]:
        if event.type == "model_start":
            assert not in_model and not open_tools
            in_model, turn = True, turn + 1
        elif event.type == "model_end":
            assert in_model
            in_model = False
        elif event.type == "text_delta":
            assert in_model
        elif event.type == "tool_start":
            assert not in_model and event.data["call_id"] not in open_tools
            assert event.data["call_id"].startswith(f"t{turn}-")
            open_tools[event.data["call_id"]] = event
        elif event.type == "tool_end":
            start = open_tools.pop(event.data["call_id"])
            assert event.data["tool"] == start.data["tool"]
            should_fail = start.data["tool"] in ("fail", "missing")
            assert ("error" in event.data) == should_fail and ("result" in event.data) != should_fail
        else:
            raise AssertionError(f"unexpected {event.type}")
    assert not open_tools and not in_model
    assert turn == len(turns)
    starts = [e.data["call_id"] for e in events if e.type == "tool_start"]
    assert sorted(starts) == sorted(f"t{t}-{i}" for t, calls in enumerate(turns) for i in range(len(calls)))


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=scripts, streamed=st.booleans())
def test_random_tool_scripts_give_well_nested_events(
    backend: str, turns: list[list[str]], streamed: bool
) -> None:
    async def main() -> None:
        events: list[Event] = []
        harness = await init(
            model=scripted(turns),
            tools=[ok, fail, slow],
            session_store=MemorySessionStore(),
            on_event=events.append,
            max_turns=len(turns) + 1,
        )
        session = await harness.session()
        if streamed:
            items = [i async for i in session.stream("go")]
            assert items[:-1] == events
        else:
            await session.prompt("go")
        check_well_nested(events, turns)
        history = session.history
        calls = [
            m
            for m in history
            if isinstance(m, AssistantMessage) and m.parts and isinstance(m.parts[0], ToolCallPart)
        ]
        assert len(calls) == len(turns)
        for i, message in enumerate(history):
            if message in calls:
                results = history[i + 1]
                assert isinstance(results, UserMessage)
                ids = [p.call_id for p in results.parts if isinstance(p, ToolResultPart)]
                assert ids == [p.id for p in message.parts if isinstance(p, ToolCallPart)]

    anyio.run(main, backend=backend)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=st.lists(scripts, min_size=2, max_size=4))
def test_concurrent_random_scripts_keep_per_operation_nesting(
    backend: str, sessions: list[list[list[str]]]
) -> None:
    async def main() -> None:
        events: list[Event] = []
        slow_seen: list[Event] = []

        async def slow_observer(event: Event) -> None:
            await anyio.lowlevel.checkpoint()
            slow_seen.append(event)

        harness = await init(
            model=FunctionModel(lambda r: "unused"),
            tools=[ok, fail, slow],
            session_store=MemorySessionStore(),
            on_event=events.append,
            max_turns=10,
        )
        harness.bus.subscribe(slow_observer)
        ops: dict[str, list[list[str]]] = {}

        async def run(i: int, turns: list[list[str]]) -> None:
            res = await (await harness.session(f"s{i}")).prompt("go", model=scripted(turns))
            ops[res.operation_id] = turns

        async with anyio.create_task_group() as tg:
            for i, turns in enumerate(sessions):
                tg.start_soon(run, i, turns)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert slow_seen == events
        for op, turns in ops.items():
            check_well_nested([e for e in events if e.operation_id == op], turns, alone=False)

    anyio.run(main, backend=backend)
