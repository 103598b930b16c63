"""The watch contract of run and dispatch stores, on memory, SQLite and PostgreSQL: a watch taken before a
read wakes for a change committed after it — by the same store object or by another client of the same
storage (another connection, as another process) — however the change and the ``wait`` interleave, and a
closed watch never blocks. Plus the counting rule of :class:`~pyflue.stores.changes.Topics`."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyflue.events import Event
from pyflue.stores.changes import Topics
from pyflue.stores.dispatch_memory import MemoryDispatchStore
from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord, DispatchStore
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunRecord
from pyflue.stores.sqlite import SQLiteDispatchStore
from tests.stores.conftest import Backend

PATIENCE = 20.0  # a generous bound: every wake-up here comes long before it
_ids = itertools.count()


def new_run() -> RunRecord:
    return RunRecord(
        run_id=f"workflow:watched:{next(_ids)}", workflow="watched", started_at=datetime.now(UTC)
    )


@pytest.mark.parametrize("same_client", [True, False], ids=["same-client", "other-client"])
async def test_a_run_watch_wakes_for_each_committed_change(backend: Backend, same_client: bool) -> None:
    reader = backend.runs()
    writer = reader if same_client else backend.runs()
    run = new_run()
    await writer.create_run(run)
    async with await reader.watch(run.run_id) as watch:
        assert await reader.read_events(run.run_id) == []
        await writer.append_events(run.run_id, [Event("log", {}, 1, run.run_id)])
        assert await watch.wait(PATIENCE)  # committed before the wait: not lost
        assert [e.seq for e in await reader.read_events(run.run_id)] == [1]

        async def finish() -> None:
            await anyio.lowlevel.checkpoint()
            done = run.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)})
            await writer.finish_run(done, [Event("run_end", {}, 2, run.run_id)])

        async with anyio.create_task_group() as group:
            group.start_soon(finish)
            with anyio.fail_after(PATIENCE):
                while (record := await reader.get_run(run.run_id)) is None or not record.finished:
                    await watch.wait(PATIENCE)
        assert [e.seq for e in await reader.read_events(run.run_id, after_seq=1)] == [2]
    assert await watch.wait(PATIENCE)  # closed: returns at once, so no loop hangs on it


async def test_a_run_watch_without_changes_times_out(backend: Backend) -> None:
    store = backend.runs()
    run = new_run()
    await store.create_run(run)
    async with await store.watch(run.run_id) as watch:
        await store.read_events(run.run_id)
        assert not await watch.wait(0.05)
    async with await store.watch("workflow:never:made") as watch:  # any id may be watched
        assert not await watch.wait(0.05)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def dispatch_clients(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[DispatchStore, DispatchStore]]:
    """Two clients of one dispatch storage (one object for memory)."""
    if request.param == "memory":
        store = MemoryDispatchStore()
        yield store, store
        await store.aclose()
    elif request.param == "sqlite":
        a, b = SQLiteDispatchStore(tmp_path / "d.db"), SQLiteDispatchStore(tmp_path / "d.db")
        yield a, b
        await a.aclose()
        await b.aclose()
    else:
        url, schema = request.getfixturevalue("postgres_url"), f"watch_{next(_ids)}"
        async with PostgresDatabase(url, schema=schema) as one, PostgresDatabase(url, schema=schema) as two:
            yield one.dispatch_store(), two.dispatch_store()


async def test_a_dispatch_watch_wakes_for_its_events_and_its_end(
    dispatch_clients: tuple[DispatchStore, DispatchStore],
) -> None:
    reader, writer = dispatch_clients
    record = await writer.enqueue(DispatchRecord(agent="a", instance_id="i", session_id="s", input="x"))
    async with await reader.watch(record.dispatch_id) as watch:
        assert (await writer.claim("w", 60))[0].dispatch_id == record.dispatch_id
        assert await reader.read_events(record.dispatch_id) == []
        await writer.append_events(record.dispatch_id, [Event("log", {}, 1)])
        assert await watch.wait(PATIENCE)
        assert [e.seq for e in await reader.read_events(record.dispatch_id)] == [1]
        await writer.complete(record.dispatch_id, "w", DispatchOutcome(text="ok"))
        with anyio.fail_after(PATIENCE):
            while (await reader.get(record.dispatch_id)).status != "delivered":  # type: ignore[union-attr]
                await watch.wait(PATIENCE)


async def test_a_dispatch_watch_wakes_for_a_cancel(
    dispatch_clients: tuple[DispatchStore, DispatchStore],
) -> None:
    reader, writer = dispatch_clients
    record = await writer.enqueue(DispatchRecord(agent="a", instance_id="i", session_id="c", input="x"))
    async with await reader.watch(record.dispatch_id) as watch:
        assert (await reader.get(record.dispatch_id)).status == "queued"  # type: ignore[union-attr]
        await writer.cancel(record.dispatch_id, "changed my mind")
        assert await watch.wait(PATIENCE)
        assert (await reader.get(record.dispatch_id)).status == "cancelled"  # type: ignore[union-attr]


_ops = st.lists(st.tuples(st.sampled_from(["touch", "wait"]), st.sampled_from(["a", "b", "c"])), max_size=40)


@given(_ops)
def test_topics_count_every_touch_until_the_next_wait(ops: list[tuple[str, str]]) -> None:
    """Whatever the interleaving, a watch's ``wait`` is True exactly when its topic was touched since
    the watch began or its previous True ``wait``; touches of other topics do not count."""

    async def check() -> None:
        topics = Topics()
        watches: dict[str, Any] = {name: topics.watch(name) for name in "abc"}
        pending = dict.fromkeys("abc", False)
        for op, name in ops:
            if op == "touch":
                topics.touch(name)
                pending[name] = True
            else:
                assert await watches[name].wait(0) is pending[name]
                pending[name] = False
        topics.touch("unwatched")  # counts nothing, wakes nobody
        assert topics.count("unwatched") == 0
        for watch in watches.values():
            watch.close()

    anyio.run(check)
