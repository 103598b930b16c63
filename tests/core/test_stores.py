"""Sessions across store objects: the part of the store contract the agent core builds on. The
stores' own contract suites are in tests/stores/."""

from __future__ import annotations

from pathlib import Path

import anyio

from pyflue import init
from pyflue.models.base import ModelRequest
from pyflue.models.messages import text_of
from pyflue.models.testing import FunctionModel
from pyflue.stores.sqlite import SQLiteSessionStore


async def test_two_store_objects_on_one_file_take_turns_on_a_session(tmp_path: Path) -> None:
    """Two store objects on one file are what two processes are: operations on one session still
    take turns, and every model call sees the whole history."""
    db = tmp_path / "pyflue.db"
    seen: list[list[str]] = []
    running: list[str] = []

    async def respond(request: ModelRequest) -> str:
        running.append("x")
        assert len(running) == 1, "two operations ran at once on one stored session"
        seen.append([text_of(m) for m in request.messages])
        await anyio.sleep(0.01)
        running.pop()
        return "ok"

    async with SQLiteSessionStore(db) as one, SQLiteSessionStore(db) as two:
        first = await init(model=FunctionModel(respond), id="case", session_store=one)
        second = await init(model=FunctionModel(respond), id="case", session_store=two)
        a, b = await first.session(), await second.session()
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.prompt, "one")
            tg.start_soon(b.prompt, "two")
        await a.prompt("three")
        assert [len(s) for s in seen] == [1, 3, 5]
        assert seen[2][:4] == seen[1] + ["ok"]
        stored = [text_of(m) for m in await one.load(a.key)]
        assert stored == [text_of(m) for m in a.history]
        assert stored[: len(b.history)] == [text_of(m) for m in b.history]
