"""Sessions: FIFO operations on one session, concurrency across sessions, abort mid-stream and
mid-tool (history stays consistent, the queue goes on), and early exit from a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from pyflue import define_tool, init
from pyflue.errors import AbortedError
from pyflue.events import Event
from pyflue.models.base import ModelRequest, ModelResponse, StreamEvent, Usage
from pyflue.models.messages import (
    AssistantMessage,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    text_of,
)
from pyflue.models.testing import FunctionModel
from pyflue.session import PromptResult, Session
from pyflue.stores.memory import MemorySessionStore


def tool_call(call_id: str, name: str, args: dict[str, Any] | None = None) -> ModelResponse:
    return ModelResponse([ToolCallPart(call_id, name, args or {})], Usage(requests=1), "tool_calls")


def assert_consistent(history: list[UserMessage | AssistantMessage]) -> None:
    for i, message in enumerate(history):
        if isinstance(message, AssistantMessage):
            ids = [p.id for p in message.parts if isinstance(p, ToolCallPart)]
            if ids:
                follow = history[i + 1]
                assert isinstance(follow, UserMessage)
                assert [p.call_id for p in follow.parts if isinstance(p, ToolResultPart)] == ids


def echo_model() -> FunctionModel:
    """Calls ``step`` once per prompt (``prompt text`` as its arg), then answers ``done: <prompt>``."""

    def respond(request: ModelRequest) -> ModelResponse | str:
        last = request.messages[-1]
        assert isinstance(last, UserMessage)
        if isinstance(last.parts[0], ToolResultPart):
            return "done: " + last.parts[0].content
        prompt = text_of(last)
        return tool_call(f"call-{prompt}", "step", {"label": prompt})

    return FunctionModel(respond)


async def make_session(
    model: Any, *, tools: list[Any] | None = None, events: list[Event] | None = None
) -> Session:
    harness = await init(
        model=model,
        tools=tools or [],
        session_store=MemorySessionStore(),
        on_event=events.append if events is not None else None,
    )
    return await harness.session()


# -- ordering and concurrency ----------------------------------------------------------------------


async def test_two_prompts_on_one_session_run_fifo_without_interleaving() -> None:
    active: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    first_entered = anyio.Event()

    @define_tool
    async def step(label: str) -> str:
        """One step."""
        active.append(label)
        overlaps.append(tuple(active))
        first_entered.set()
        await anyio.sleep(0.03)
        active.remove(label)
        return label

    events: list[Event] = []
    session = await make_session(echo_model(), tools=[step], events=events)
    results: dict[str, PromptResult] = {}

    async def run(text: str, arrived: anyio.Event | None = None) -> None:
        if arrived is not None:
            arrived.set()  # prompt() joins the queue before its first checkpoint
        results[text] = await session.prompt(text)

    async def arrive(tg: anyio.abc.TaskGroup, text: str) -> None:
        """Start a prompt and return once it is in the queue (trio runs new tasks in any order)."""
        arrived = anyio.Event()
        tg.start_soon(run, text, arrived)
        await arrived.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "A")
        await first_entered.wait()  # A is in its tool; B arrives now and must wait
        await arrive(tg, "B")
        await arrive(tg, "C")

    assert all(len(o) == 1 for o in overlaps)
    assert [results[k].text for k in "ABC"] == ["done: A", "done: B", "done: C"]
    texts = [
        [p.call_id for p in m.parts if isinstance(p, ToolResultPart)] or text_of(m) for m in session.history
    ]
    assert texts == [
        "A", "", ["call-A"], "done: A",
        "B", "", ["call-B"], "done: B",
        "C", "", ["call-C"], "done: C",
    ]  # fmt: skip
    assert_consistent(session.history)
    # Each operation's events are contiguous: start, its own steps, end; then the next one.
    ops = [e.operation_id for e in events]
    order = [results[k].operation_id for k in "ABC"]
    assert [op for i, op in enumerate(ops) if i == 0 or ops[i - 1] != op] == order
    for op in order:
        mine = [e.type for e in events if e.operation_id == op]
        assert mine[0] == "operation_start" and mine[-1] == "operation_end"


async def test_prompts_on_two_sessions_run_concurrently() -> None:
    entered = {"a": anyio.Event(), "b": anyio.Event()}

    @define_tool
    async def step(label: str) -> str:
        """Waits until the other session's tool is running too."""
        me = "a" if label.startswith("a") else "b"
        entered[me].set()
        await entered["b" if me == "a" else "a"].wait()
        return label

    harness = await init(model=echo_model(), tools=[step], session_store=MemorySessionStore())
    a, b = await harness.session("a"), await harness.session("b")
    out: dict[str, str] = {}

    async def run(session: Session, text: str) -> None:
        out[text] = (await session.prompt(text)).text

    with anyio.fail_after(5):  # sequential execution would deadlock here
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, a, "a1")
            tg.start_soon(run, b, "b1")
    assert out == {"a1": "done: a1", "b1": "done: b1"}
    assert text_of(a.history[0]) == "a1" and text_of(b.history[0]) == "b1"


async def test_two_harnesses_of_one_instance_share_the_session_order() -> None:
    store = MemorySessionStore()
    gate = anyio.Event()
    running: list[int] = []

    async def slow(request: ModelRequest) -> str:
        running.append(1)
        assert len(running) == 1, "two operations ran at once on one stored session"
        gate.set()
        await anyio.sleep(0.02)
        running.pop()
        return "ok"

    h1 = await init(model=FunctionModel(slow), id="shared", session_store=store)
    h2 = await init(model=FunctionModel(slow), id="shared", session_store=store)
    s1, s2 = await h1.session(), await h2.session()
    async with anyio.create_task_group() as tg:
        tg.start_soon(s1.prompt, "one")
        await gate.wait()
        tg.start_soon(s2.prompt, "two")
    assert len(await store.load(s1.key)) == 4


@pytest.mark.parametrize("how", ["two harnesses", "evicted from the cache"])
async def test_every_session_object_of_one_stored_session_sees_one_history(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two harnesses of one instance (or a session still in use after the harness's cache evicted
    it) must not keep diverging copies: each model call sees everything said so far."""
    import pyflue.agent

    store = MemorySessionStore()
    seen: list[list[str]] = []

    def respond(request: ModelRequest) -> str:
        seen.append([text_of(m) for m in request.messages])
        return "ok"

    first = await init(model=FunctionModel(respond), id="shared", session_store=store)
    s1 = await first.session()
    if how == "two harnesses":
        second = await init(model=FunctionModel(respond), id="shared", session_store=store)
    else:
        monkeypatch.setattr(pyflue.agent, "_SESSION_CACHE", 1)
        second = first
        await first.session("other")  # evicts "default"; s1 is still held and used
    s2 = await second.session()
    assert s2 is not s1
    await s1.prompt("one")
    await s2.prompt("two")
    await s1.prompt("three")
    assert seen == [["one"], ["one", "ok", "two"], ["one", "ok", "two", "ok", "three"]]
    stored = [text_of(m) for m in await store.load(s1.key)]
    assert stored == [text_of(m) for m in s1.history] == [text_of(m) for m in s2.history]


# -- abort -----------------------------------------------------------------------------------------


async def test_abort_mid_stream() -> None:
    release = anyio.Event()

    async def stalls(request: ModelRequest) -> AsyncIterator[str | StreamEvent]:
        yield "Hel"
        yield "lo"
        await release.wait()  # never set: only an abort gets us out
        yield "never"

    session = await make_session(FunctionModel(stream_function=stalls))
    seen: list[Event] = []
    with pytest.raises(AbortedError, match="aborted: user pressed stop"):
        async for item in session.stream("hi"):
            assert isinstance(item, Event)
            seen.append(item)
            if item.type == "text_delta" and item.data["text"] == "lo":
                assert await session.abort("user pressed stop") is True
    types = [e.type for e in seen]
    assert types[:2] == ["operation_start", "model_start"]
    assert types[-3:] == ["model_end", "abort", "operation_end"]
    assert seen[-3].data["error"]["type"] in ("CancelledError", "Cancelled")
    assert seen[-2].data == {"reason": "user pressed stop"}
    assert seen[-1].data["status"] == "aborted" and seen[-1].data["error"]["type"] == "AbortedError"
    assert session.history == []  # no answer: the prompt leaves no trace, the caller may retry
    assert await session.abort() is False  # nothing in flight any more
    assert session.operation_id is None


async def test_abort_mid_tool_keeps_history_consistent_and_the_queue_runs() -> None:
    in_tool = anyio.Event()
    never = anyio.Event()
    cleaned_up: list[str] = []

    @define_tool
    async def step(label: str) -> str:
        """Hangs for the first prompt."""
        if label == "first":
            in_tool.set()
            try:
                await never.wait()
            finally:
                cleaned_up.append(label)
        return label

    @define_tool
    async def quick() -> str:
        """Finishes at once, alongside the hanging tool."""
        return "quick"

    requests: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        requests.append(request)
        last = request.messages[-1]
        assert isinstance(last, UserMessage)
        if isinstance(last.parts[0], ToolResultPart):
            return "done"
        label = text_of(last)
        return ModelResponse(
            [ToolCallPart(f"{label}-1", "step", {"label": label}), ToolCallPart(f"{label}-2", "quick", {})],
            Usage(requests=1),
            "tool_calls",
        )

    events: list[Event] = []
    session = await make_session(FunctionModel(respond), tools=[step, quick], events=events)
    outcome: dict[str, Any] = {}

    async def first() -> None:
        try:
            await session.prompt("first")
        except AbortedError as exc:
            outcome["first"] = exc

    async def second() -> None:
        outcome["second"] = await session.prompt("second")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await in_tool.wait()
            tg.start_soon(second)
            await anyio.sleep(0.01)  # "second" is queued behind "first"
            assert "second" not in outcome
            assert await session.abort() is True

    assert isinstance(outcome["first"], AbortedError)
    assert outcome["second"].text == "done"
    assert cleaned_up == ["first"]  # the tool was cancelled, its finally ran
    history = session.history
    assert_consistent(history)
    aborted_results = history[2].parts
    assert [(p.call_id, p.is_error) for p in aborted_results] == [("first-1", True), ("first-2", False)]  # type: ignore[union-attr]
    assert aborted_results[0].content == "error: the operation was aborted"  # type: ignore[union-attr]
    assert [text_of(m) for m in history[3:]] == ["second", "", "", "done"]
    # The second prompt's model saw the aborted turn, fully answered.
    assert requests[1].messages[:3] == history[:3]
    statuses = [e.data["status"] for e in events if e.type == "operation_end"]
    assert statuses == ["aborted", "completed"]
    tool_ends = {e.data["call_id"]: e for e in events if e.type == "tool_end"}
    assert tool_ends["first-2"].data["result"] == "quick"


async def test_abort_with_nothing_running_returns_false() -> None:
    session = await make_session(FunctionModel(lambda r: "hi"))
    assert await session.abort() is False
    assert (await session.prompt("x")).text == "hi"


async def test_abort_only_touches_its_own_session() -> None:
    gate = anyio.Event()
    release = anyio.Event()

    async def slow(request: ModelRequest) -> str:
        gate.set()
        await release.wait()
        return "finished"

    harness = await init(model=FunctionModel(slow), session_store=MemorySessionStore())
    a, b = await harness.session("a"), await harness.session("b")
    result: dict[str, Any] = {}

    async def run_b() -> None:
        result["b"] = await b.prompt("b")

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_b)
        await gate.wait()
        assert await a.abort() is False
        release.set()
    assert result["b"].text == "finished"


async def test_leaving_a_stream_early_cancels_the_operation_cleanly() -> None:
    async def chatty(request: ModelRequest) -> AsyncIterator[str]:
        for i in range(1000):
            yield f"w{i} "
            await anyio.sleep(0.001)

    events: list[Event] = []
    session = await make_session(FunctionModel(stream_function=chatty), events=events)
    async with session.stream("talk") as stream:
        async for item in stream:
            if isinstance(item, Event) and item.type == "text_delta":
                break
    assert stream.result is None
    assert session.history == []
    assert session.operation_id is None
    ends = [e for e in events if e.type == "operation_end"]
    assert [e.data["status"] for e in ends] == ["cancelled"]
    # The session is usable afterwards.
    session_model = FunctionModel(lambda r: "after")
    assert (await session.prompt("again", model=session_model)).text == "after"


async def test_a_failing_stream_in_async_with_raises_its_own_error_not_a_group() -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("provider exploded")

    session = await make_session(FunctionModel(broken))
    with pytest.raises(RuntimeError, match="provider exploded"):
        async with session.stream("hi") as stream:
            async for _ in stream:
                pass
    # An error of the caller's own block comes out as itself too.
    session = await make_session(FunctionModel(lambda r: "fine"))
    with pytest.raises(KeyError):
        async with session.stream("hi"):
            raise KeyError("the caller's own")


async def test_a_stream_that_fails_raises_from_the_iterator() -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("provider exploded")

    session = await make_session(FunctionModel(broken))
    got: list[Any] = []
    with pytest.raises(RuntimeError, match="provider exploded"):
        async for item in session.stream("hi"):
            got.append(item)
    assert [e.type for e in got] == ["operation_start", "model_start", "model_end", "operation_end"]
    assert got[-1].data["status"] == "failed"


async def test_stream_sees_only_its_own_operation() -> None:
    release = anyio.Event()

    async def gated(request: ModelRequest) -> str:
        if text_of(request.messages[-1]) == "other":
            await release.wait()
        return "ok"

    harness = await init(model=FunctionModel(gated), session_store=MemorySessionStore())
    mine, other = await harness.session("mine"), await harness.session("other")
    async with anyio.create_task_group() as tg:
        tg.start_soon(other.prompt, "other")
        items = [i async for i in mine.stream("mine")]
        release.set()
    ops = {i.operation_id for i in items if isinstance(i, Event)}
    assert ops == {items[-1].operation_id}  # type: ignore[union-attr]
    assert {i.session_id for i in items if isinstance(i, Event)} == {"mine"}


async def test_prompt_input_validation() -> None:
    from pyflue.errors import ConfigError

    session = await make_session(FunctionModel(lambda r: "x"))
    with pytest.raises(ConfigError, match="non-empty list"):
        await session.prompt([])
    with pytest.raises(ConfigError, match="invalid prompt part"):
        await session.prompt([{"type": "video", "data": b""}])
    assert session.history == []
    res = await session.prompt(["plain", TextPart("part")])
    assert [p.text for p in res.messages[0].parts] == ["plain", "part"]  # type: ignore[union-attr]


async def test_a_caller_timeout_mid_tool_leaves_a_consistent_usable_session() -> None:
    never = anyio.Event()

    @define_tool
    async def step(label: str) -> str:
        """Hangs on the first prompt."""
        if label == "first":
            await never.wait()
        return label

    events: list[Event] = []
    session = await make_session(echo_model(), tools=[step], events=events)
    with anyio.move_on_after(0.05) as timeout:
        await session.prompt("first")
    assert timeout.cancelled_caught
    assert session.operation_id is None
    assert_consistent(session.history)
    assert [e.data["status"] for e in events if e.type == "operation_end"] == ["cancelled"]
    assert (await session.prompt("second")).text == "done: second"
    assert_consistent(session.history)
    assert len(session.history) == 7


async def test_abort_from_inside_a_tool_and_of_a_blocked_sync_tool() -> None:
    import threading

    from pyflue import ToolContext

    release = threading.Event()

    @define_tool
    def step(ctx: ToolContext, label: str) -> str:
        """A sync tool that asks to abort its own operation, then blocks."""
        anyio.from_thread.run(ctx.session.abort, "tool gave up")
        release.wait(10)
        return label

    session = await make_session(echo_model(), tools=[step])
    try:
        with anyio.fail_after(5):
            with pytest.raises(AbortedError, match="tool gave up"):
                await session.prompt("first")
    finally:
        release.set()
    assert_consistent(session.history)
    assert session.history[2].parts[0].content == "error: the operation was aborted"  # type: ignore[union-attr]


async def test_breaking_out_of_a_plain_async_for_cancels_the_operation() -> None:
    """The README's ``async for ev in session.stream(...)`` with a ``break`` and no ``async with``:
    the abandoned generator is finalised by the event loop in another task; that must neither crash
    the caller (asyncio) nor the run (trio), and the operation is cancelled, its history settled."""
    never = anyio.Event()

    @define_tool
    async def step(label: str) -> str:
        """Hangs."""
        await never.wait()
        return label

    events: list[Event] = []
    session = await make_session(echo_model(), tools=[step], events=events)
    async for item in session.stream("first"):
        if isinstance(item, Event) and item.type == "tool_start":
            break
    import gc

    gc.collect()  # what CPython does at once on refcount zero, on every implementation
    with anyio.fail_after(5):
        result = await session.prompt("second", model=FunctionModel(lambda r: "after"))
    assert result.text == "after"
    assert [e.data["status"] for e in events if e.type == "operation_end"] == ["cancelled", "completed"]
    assert_consistent(session.history)
    assert [m.role for m in session.history] == ["user", "assistant", "user", "user", "assistant"]
    assert session.history[2].parts[0].content == "error: the operation was aborted"  # type: ignore[union-attr]


async def test_a_failed_retry_of_the_same_prompt_keeps_the_earlier_one() -> None:
    """Regression: rolling back an unanswered prompt removed an *equal* earlier message instead."""
    from pyflue.errors import ModelError

    calls = 0

    def answer(request: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ModelError("provider down")
        return "answer 1"

    store = MemorySessionStore()
    session = await (await init(model=FunctionModel(answer), session_store=store)).session()
    await session.prompt("hi")
    with pytest.raises(ModelError):
        await session.prompt("hi")
    texts = [text_of(m) for m in session.history]
    assert texts == ["hi", "answer 1"]
    assert [text_of(m) for m in await store.load(session.key)] == texts


async def test_a_queued_prompt_cancelled_while_waiting_gives_up_its_place() -> None:
    release = anyio.Event()
    running = anyio.Event()

    async def respond(request: ModelRequest) -> str:
        prompt = text_of(request.messages[-1])
        if prompt == "first":
            running.set()
            await release.wait()
        return f"answer to {prompt}"

    session = await make_session(FunctionModel(respond))
    results: dict[str, str] = {}

    async def run(text: str) -> None:
        results[text] = (await session.prompt(text)).text

    async def impatient() -> None:
        with anyio.move_on_after(0.02):
            await session.prompt("impatient")
        results["impatient"] = "gave up"

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "first")
            await running.wait()
            tg.start_soon(impatient)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(run, "third")
            await anyio.sleep(0.05)  # "impatient" gave up meanwhile
            release.set()
    assert results == {"first": "answer to first", "impatient": "gave up", "third": "answer to third"}
    assert [text_of(m) for m in session.history] == ["first", "answer to first", "third", "answer to third"]


async def test_calls_left_unanswered_by_a_dead_process_get_an_unknown_outcome_not_a_rerun() -> None:
    """A process that died while a tool ran stored the call (calls are stored before tools run) but
    not its result. The next operation answers that call with an 'outcome unknown' error result, so
    the model decides what to do instead of the call silently running twice."""
    from pyflue.loop import UNKNOWN_OUTCOME
    from pyflue.models.messages import ToolCallPart, ToolResultPart
    from pyflue.stores.memory import MemorySessionStore
    from pyflue.stores.sessions import SessionKey

    store = MemorySessionStore()
    ran: list[str] = []

    @define_tool
    def charge_card(amount: int) -> str:
        """Charge the customer's card."""
        ran.append("charged")
        return "ok"

    call = ToolCallPart("call_1", "charge_card", {"amount": 5})
    await store.append(
        SessionKey("agent", "shop", "default"),
        [UserMessage([TextPart("charge 5")]), AssistantMessage([call])],
    )
    seen: list[Any] = []
    harness = await init(
        id="shop",
        session_store=store,
        tools=[charge_card],
        model=FunctionModel(lambda request: seen.append(request.messages) or "I will check first."),
    )
    session = await harness.session()
    result = await session.prompt("did it go through?")

    assert result.text == "I will check first." and ran == []
    first = seen[0][-1]
    assert isinstance(first.parts[0], ToolResultPart) and first.parts[0].is_error
    assert first.parts[0].call_id == "call_1" and first.parts[0].content == UNKNOWN_OUTCOME
    assert isinstance(first.parts[1], TextPart) and first.parts[1].text == "did it go through?"
    stored = await store.load(SessionKey("agent", "shop", "default"))
    assert stored == session.history and len(stored) == 4


async def test_a_tool_call_is_stored_before_the_tool_runs() -> None:
    from pyflue.models.messages import ToolCallPart
    from pyflue.stores.memory import MemorySessionStore
    from pyflue.stores.sessions import SessionKey

    store = MemorySessionStore()
    key = SessionKey("agent", "probe", "default")
    stored_while_running: list[Any] = []

    @define_tool
    async def probe() -> str:
        """Look at the store while running."""
        stored_while_running.extend(await store.load(key))
        return "done"

    harness = await init(id="probe", session_store=store, tools=[probe], model="test")
    await (await harness.session()).prompt("go")
    assert len(stored_while_running) == 2
    assert isinstance(stored_while_running[-1].parts[0], ToolCallPart)
