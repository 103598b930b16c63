"""Durable dispatch in one process: acceptance, delivery, order, outcomes, cancellation, retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue import (
    Dispatcher,
    Project,
    cancel_dispatch,
    create_agent,
    define_tool,
    dispatch,
    get_dispatch,
    iter_dispatch_events,
    list_dispatches,
    wait_dispatch,
)
from pyflue.errors import ConfigError, InvalidIdError, NotFoundError
from pyflue.models.base import ModelResponse
from pyflue.models.messages import TextPart, ToolCallPart, UserMessage, text_of
from pyflue.models.testing import FunctionModel
from pyflue.stores.dispatch_memory import MemoryDispatchStore
from pyflue.stores.memory import MemorySessionStore


def echo_agent(name: str = "echo", answer: Any = None) -> Any:
    """An agent whose model answers ``echo: <last user text>`` (or what ``answer`` returns)."""

    def reply(request: Any) -> str:
        last = request.messages[-1]
        return answer(request) if answer else f"echo: {text_of(last)}"

    return create_agent(lambda ctx: {"model": FunctionModel(reply)}, name=name)


def stores() -> tuple[MemoryDispatchStore, MemorySessionStore]:
    return MemoryDispatchStore(), MemorySessionStore()


def user_texts(history: list[Any]) -> list[str]:
    return [text_of(m) for m in history if isinstance(m, UserMessage) and text_of(m)]


async def test_a_dispatch_is_accepted_then_delivered_with_its_outcome_and_log() -> None:
    agent = echo_agent()
    store, sessions = stores()
    receipt = await dispatch(agent, id="u1", input="hello", store=store)
    assert receipt.status == "queued" and receipt.agent == "echo" and receipt.session_id == "default"
    assert (await get_dispatch(receipt.dispatch_id, store=store)).status == "queued"

    async with Dispatcher(agents={"echo": agent}, store=store, session_store=sessions, poll_interval=0.02):
        record = await wait_dispatch(receipt.dispatch_id, timeout=10, store=store)

    assert record.status == "delivered" and record.attempts == 1
    assert record.outcome is not None and record.outcome.text == "echo: hello"
    assert record.outcome.usage["requests"] == 1
    events = [e async for e in iter_dispatch_events(receipt.dispatch_id, store=store)]
    types = [e.type for e in events]
    assert types[0] == "dispatch_started" and types[-1] == "dispatch_delivered"
    assert "operation_start" in types and "model_end" in types
    start = next(e for e in events if e.type == "operation_start")
    assert start.data["kind"] == "dispatch" and start.operation_id == record.outcome.operation_id
    assert events[0].data["operation_id"] == record.outcome.operation_id
    assert [e.seq for e in events] == sorted({e.seq for e in events})  # strictly increasing
    attempts = await store.attempts(receipt.dispatch_id)
    assert [a.status for a in attempts] == ["delivered"]


async def test_input_is_validated_before_anything_is_queued(tmp_path: Path) -> None:
    store, _ = stores()
    agent = echo_agent()
    with pytest.raises(ConfigError, match="empty"):
        await dispatch(agent, id="u1", input="   ", store=store)
    with pytest.raises(ConfigError):
        await dispatch(agent, id="u1", input=[], store=store)
    with pytest.raises(InvalidIdError):
        await dispatch(agent, id="", input="hi", store=store)
    with pytest.raises(ConfigError, match="named agent"):
        await dispatch(create_agent(lambda ctx: {"model": "test"}), id="u1", input="hi", store=store)
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "helper.py").write_text(
        "from pyflue import create_agent\ndefault = create_agent(lambda ctx: {'model': 'test'})\n"
    )
    with pytest.raises(NotFoundError, match="available: helper"):
        await dispatch("nope", id="u1", input="hi", project=tmp_path, store=store)
    assert len(await list_dispatches(store=store)) == 0


async def test_a_key_makes_dispatch_idempotent() -> None:
    store, _ = stores()
    agent = echo_agent()
    first = await dispatch(agent, id="u1", input="pay", key="order-7", store=store)
    again = await dispatch(agent, id="u1", input="pay", key="order-7", store=store)
    assert again.dispatch_id == first.dispatch_id
    with pytest.raises(ConfigError):
        await dispatch(agent, id="someone-else", input="pay", key="order-7", store=store)
    assert len(await list_dispatches(store=store)) == 1


async def test_order_holds_per_session_and_sessions_run_concurrently() -> None:
    store, sessions = stores()
    agent = echo_agent()
    sent: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    ids = []
    for i in range(6):
        for session in sent:
            text = f"{session}-{i}"
            sent[session].append(text)
            ids.append((await dispatch(agent, id="u", session=session, input=text, store=store)).dispatch_id)
    async with Dispatcher(agents={"echo": agent}, store=store, session_store=sessions, poll_interval=0.02):
        for dispatch_id in ids:
            assert (await wait_dispatch(dispatch_id, timeout=20, store=store)).status == "delivered"
    from pyflue.stores.sessions import SessionKey

    for session, texts in sent.items():
        history = await sessions.load(SessionKey("echo", "u", session))
        assert user_texts(history) == texts


async def test_cancel_a_queued_item_and_a_running_one_leaves_the_rest() -> None:
    store, sessions = stores()
    release = anyio.Event()
    started = anyio.Event()

    @define_tool
    async def slow() -> str:
        """Wait until released."""
        started.set()
        await release.wait()
        return "done"

    calls: list[str] = []

    def reply(request: Any) -> Any:
        last = text_of(request.messages[-1])
        calls.append(last)
        if last == "block" and len(request.messages) == 1:
            return ModelResponse([ToolCallPart("c1", "slow", {})])
        return f"ok {last}"

    agent = create_agent(lambda ctx: {"model": FunctionModel(reply), "tools": [slow]}, name="worker")
    running = await dispatch(agent, id="u", input="block", store=store)
    queued = await dispatch(agent, id="u", input="never", store=store)
    after = await dispatch(agent, id="u", input="after", store=store)
    other = await dispatch(agent, id="u", session="other", input="other", store=store)

    cancelled_queued = await cancel_dispatch(queued.dispatch_id, store=store)
    assert cancelled_queued.status == "cancelled"
    async with Dispatcher(
        agents={"worker": agent}, store=store, session_store=sessions, poll_interval=0.02, lease_seconds=0.3
    ):
        with anyio.fail_after(10):
            await started.wait()
        await cancel_dispatch(running.dispatch_id, "changed my mind", store=store)
        record = await wait_dispatch(running.dispatch_id, timeout=10, store=store)
        assert record.status == "cancelled" and record.cancel_requested == "changed my mind"
        assert (await wait_dispatch(after.dispatch_id, timeout=10, store=store)).status == "delivered"
        assert (await wait_dispatch(other.dispatch_id, timeout=10, store=store)).status == "delivered"
    assert "never" not in calls
    events = [e.type async for e in iter_dispatch_events(running.dispatch_id, store=store)]
    assert events[-1] == "dispatch_cancelled"


async def test_poison_input_fails_after_max_attempts_and_the_session_moves_on() -> None:
    store, sessions = stores()

    def reply(request: Any) -> str:
        if text_of(request.messages[-1]) == "poison":
            raise RuntimeError("the model chokes")
        return "fine"

    agent = create_agent(lambda ctx: {"model": FunctionModel(reply)}, name="p")
    bad = await dispatch(agent, id="u", input="poison", store=store, max_attempts=3)
    good = await dispatch(agent, id="u", input="next", store=store)
    async with Dispatcher(
        agents={"p": agent}, store=store, session_store=sessions, poll_interval=0.02, backoff=0.01
    ):
        failed = await wait_dispatch(bad.dispatch_id, timeout=10, store=store)
        delivered = await wait_dispatch(good.dispatch_id, timeout=10, store=store)
    assert failed.status == "failed" and failed.attempts == 3
    assert failed.outcome is not None and failed.outcome.error is not None
    assert failed.outcome.error["type"] == "RuntimeError"
    assert [a.status for a in await store.attempts(bad.dispatch_id)] == ["failed"] * 3
    assert delivered.status == "delivered"
    failures = [
        e
        for e in [e async for e in iter_dispatch_events(bad.dispatch_id, store=store)]
        if e.type == "dispatch_failed"
    ]
    assert [f.data["will_retry"] for f in failures] == [True, True, False]


async def test_an_unknown_agent_fails_at_once_without_retries() -> None:
    store, sessions = stores()
    receipt = await dispatch(echo_agent("ghost"), id="u", input="hi", store=store)
    async with Dispatcher(
        agents={"echo": echo_agent()}, store=store, session_store=sessions, poll_interval=0.02
    ):
        record = await wait_dispatch(receipt.dispatch_id, timeout=10, store=store)
    assert record.status == "failed" and record.attempts == 1
    assert record.outcome is not None and record.outcome.error is not None
    assert record.outcome.error["type"] == "UnknownAgentError"


async def test_a_dispatch_takes_its_turn_with_direct_prompts_on_the_session() -> None:
    store, sessions = stores()
    agent = echo_agent()
    from pyflue import init

    harness = await init(agent, id="u", session_store=sessions)
    session = await harness.session()
    async with Dispatcher(agents={"echo": agent}, store=store, session_store=sessions, poll_interval=0.02):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(session.prompt, f"direct {i}")
            receipts = [await dispatch(agent, id="u", input=f"queued {i}", store=store) for i in range(3)]
        for receipt in receipts:
            await wait_dispatch(receipt.dispatch_id, timeout=10, store=store)
    history = session.history
    # Turns never interleave: every prompt is directly followed by its own answer.
    for prompt, answer in zip(history[::2], history[1::2], strict=True):
        assert text_of(answer) == f"echo: {text_of(prompt)}"
    assert len(history) == 12


async def test_wait_dispatch_times_out_and_unknown_ids_are_not_found() -> None:
    store, _ = stores()
    receipt = await dispatch(echo_agent(), id="u", input="hi", store=store)
    with pytest.raises(TimeoutError):
        await wait_dispatch(receipt.dispatch_id, timeout=0.1, store=store)
    with pytest.raises(NotFoundError):
        await get_dispatch("dispatch:nope", store=store)
    with pytest.raises(NotFoundError):
        await cancel_dispatch("dispatch:nope", store=store)


async def test_a_project_dispatches_by_name_through_its_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "helper.py").write_text(
        "from pyflue import create_agent\ndefault = create_agent(lambda ctx: {'model': 'test'})\n"
    )
    project = Project.load(tmp_path)
    receipt = await dispatch("helper", id="case-1", input=[{"type": "text", "text": "hi"}], project=project)
    assert (tmp_path / ".pyflue" / "pyflue.db").exists()
    async with Dispatcher(project, poll_interval=0.02):
        record = await wait_dispatch(receipt.dispatch_id, timeout=10, project=project)
    assert record.status == "delivered" and record.outcome is not None
    assert record.outcome.text == "success (no tool calls)"  # the test model, with no tools
    history = (await (await project.instance("helper", "case-1")).session()).history
    assert isinstance(history[0], UserMessage) and history[0].parts == [TextPart("hi")]


async def test_items_claimed_as_the_worker_stops_are_handed_back_not_orphaned() -> None:
    """A claim still in flight when ``async with Dispatcher`` is left: its items go back to the
    queue (available again at once), never left running under a worker that is gone."""

    class SlowClaims(MemoryDispatchStore):
        async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> list[Any]:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.2)
                return await super().claim(worker, lease_seconds, limit)

    store, sessions = SlowClaims(), MemorySessionStore()
    receipt = await dispatch(echo_agent(), id="u", input="hi", store=store)
    async with Dispatcher(agents={"echo": echo_agent()}, store=store, session_store=sessions):
        await anyio.sleep(0.05)
    record = await get_dispatch(receipt.dispatch_id, store=store)
    assert record.status == "queued" and record.worker is None
    assert [a.status for a in await store.attempts(receipt.dispatch_id)] == ["failed"]
