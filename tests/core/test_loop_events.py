"""Every tool_start gets its tool_end, even when the operation is aborted mid-tool."""

from __future__ import annotations

import anyio
import pytest

from pyflue import define_tool, init
from pyflue.errors import AbortedError
from pyflue.events import Event
from pyflue.models.testing import TestModel


async def test_an_aborted_tool_still_ends() -> None:
    started = anyio.Event()

    @define_tool
    async def wait_forever() -> str:
        """Never returns."""
        started.set()
        await anyio.sleep_forever()
        return "unreachable"

    events: list[Event] = []
    harness = await init(model=TestModel(), tools=[wait_forever], on_event=events.append)
    session = await harness.session()

    async def abort_when_started() -> None:
        await started.wait()
        await session.abort("user pressed stop")

    async with anyio.create_task_group() as tg:
        tg.start_soon(abort_when_started)
        with pytest.raises(AbortedError):
            await session.prompt("go")
    ends = [e for e in events if e.type == "tool_end"]
    assert len(ends) == 1
    assert ends[0].data["tool"] == "wait_forever"
    assert "Cancel" in ends[0].data["error"]["type"]
    assert [e.type for e in events][-2:] == ["abort", "operation_end"]


async def test_a_store_that_fails_leaves_memory_equal_to_the_store() -> None:
    """Regression: a failed append dropped the batch from the unsaved list but kept it in memory, so
    the next model call saw messages the store never got."""
    from pyflue.errors import StoreError
    from pyflue.models.testing import FunctionModel
    from pyflue.stores.memory import MemorySessionStore

    class FlakyStore(MemorySessionStore):
        fail = False

        async def append(self, key, messages, **fence):  # type: ignore[no-untyped-def]
            if self.fail:
                raise StoreError("disk full")
            return await super().append(key, messages, **fence)

    store = FlakyStore()
    session = await (await init(model=FunctionModel(lambda r: "ok"), session_store=store)).session()
    await session.prompt("first")
    store.fail = True
    with pytest.raises(StoreError):
        await session.prompt("second")
    stored = await store.load(session.key)
    assert len(session.history) == len(stored) == 2
    store.fail = False
    await session.prompt("third")
    assert len(await store.load(session.key)) == len(session.history) == 4


async def test_typed_output_refuses_a_tool_named_like_its_output_tool() -> None:
    """Anthropic's native typed output is a forced tool named ``final_result``: a user tool of that
    name would be taken for the answer, so asking for typed output with one is a clear error."""
    from pydantic import BaseModel

    from pyflue.errors import ConfigError

    class Report(BaseModel):
        summary: str

    def final_result(summary: str) -> str:
        """A user's tool that happens to share the name."""
        return summary

    from pyflue.stores.memory import MemorySessionStore

    harness = await init(model=TestModel(), tools=[final_result], session_store=MemorySessionStore())
    session = await harness.session()
    with pytest.raises(ConfigError, match="final_result"):
        await session.prompt("Summarise", result=Report)
    assert session.history == []
    assert (await session.prompt("plain prompts still work")).text
