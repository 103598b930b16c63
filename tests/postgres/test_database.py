"""What PostgreSQL adds to the store contracts: schema versions and upgrades, errors that say what to
do, one head per session under concurrent enqueues from several hosts, strictly increasing run event
seqs under concurrent writers, and run ownership by lease."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from pyflue.errors import ConfigError, InvalidIdError, StoreError
from pyflue.events import Event
from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord
from pyflue.stores.postgres import SCHEMA_VERSION, PostgresDatabase
from pyflue.stores.runs import RunRecord
from pyflue.stores.sessions import SessionKey


async def _versions(db: PostgresDatabase) -> list[int]:
    rows = await db.run(lambda conn: conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall())
    return [int(r[0]) for r in rows]


async def test_processes_starting_together_upgrade_the_schema_once(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    schema = new_schema()
    databases = [PostgresDatabase(postgres_url, schema=schema, pool_size=1) for _ in range(4)]
    results: list[int] = []
    try:

        async def start(db: PostgresDatabase) -> None:
            results.append(await db.upgrade())
            await db.session_store().append(SessionKey("a", "i", "s"), [])

        async with anyio.create_task_group() as group:
            for db in databases:
                group.start_soon(start, db)
        assert results == [SCHEMA_VERSION] * 4
        assert await _versions(databases[0]) == list(range(1, SCHEMA_VERSION + 1))
        assert await databases[0].upgrade() == SCHEMA_VERSION  # again: nothing to do
        assert await _versions(databases[0]) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for db in databases:
            await db.aclose()


async def test_without_auto_upgrade_an_old_schema_says_to_upgrade(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    async with PostgresDatabase(postgres_url, schema=new_schema(), auto_upgrade=False) as db:
        store = db.session_store()
        with pytest.raises(StoreError, match="pyflue db upgrade"):
            await store.load(SessionKey("a", "i", "s"))
        assert await db.upgrade() == SCHEMA_VERSION
        assert await store.load(SessionKey("a", "i", "s")) == []


async def test_a_schema_newer_than_the_code_is_refused(database: PostgresDatabase, postgres_url: str) -> None:
    await database.upgrade()
    await database.run(lambda conn: conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (99,)))
    async with PostgresDatabase(postgres_url, schema=database.schema) as other:
        with pytest.raises(StoreError, match="newer than this PyFlue knows"):
            await other.run_store().get_run("x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_bad_urls_and_unreachable_servers_are_typed_errors() -> None:
    for bad in ("mysql://x", "", "sqlite:///x.db"):
        with pytest.raises(ConfigError, match="postgresql://"):
            PostgresDatabase(bad)
    with pytest.raises(ConfigError, match="invalid PostgreSQL URL"):
        PostgresDatabase("postgresql://host:notaport:x/db?foo=bar")
    with pytest.raises(ConfigError, match="schema"):
        PostgresDatabase("postgresql://localhost/db", schema="")
    url = f"postgresql://nobody:secret-password@127.0.0.1:{_free_port()}/db"
    async with PostgresDatabase(url, connect_timeout=2) as db:
        with pytest.raises(StoreError, match=r"Connection refused.*PYFLUE_DATABASE_URL") as caught:
            await db.dispatch_store().get("dispatch:x")
        assert "secret-password" not in str(caught.value) and len(str(caught.value)) < 500


async def test_text_postgresql_cannot_hold_is_an_invalid_id(database: PostgresDatabase) -> None:
    with pytest.raises(InvalidIdError, match="NUL"):
        await database.session_store().load(SessionKey("a", "i\x00", "s"))
    with pytest.raises(InvalidIdError, match="NUL"):
        await database.run_store().get_run("run\x00id")


async def test_concurrent_enqueues_from_two_hosts_make_one_head_per_session(
    database: PostgresDatabase, postgres_url: str
) -> None:
    """Both hosts enqueue into the same sessions at once: each session has exactly one claimable
    head at any time, and claims follow acceptance order."""
    async with PostgresDatabase(postgres_url, schema=database.schema) as other:
        stores = [database.dispatch_store(), other.dispatch_store()]
        made: list[DispatchRecord] = []

        async def host(n: int) -> None:
            for i in range(30):
                made.append(
                    await stores[n].enqueue(
                        DispatchRecord(agent="a", instance_id="i", session_id=f"s{i % 3}", input=f"{n}-{i}")
                    )
                )

        async with anyio.create_task_group() as group:
            group.start_soon(host, 0)
            group.start_soon(host, 1)

        async def heads() -> list[tuple[str, int]]:
            rows = await database.run(
                lambda conn: conn.execute(
                    "SELECT session_id, count(*) FROM dispatch_items WHERE ready_at IS NOT NULL "
                    "GROUP BY session_id ORDER BY 1"
                ).fetchall()
            )
            return [(r[0], int(r[1])) for r in rows]

        assert await heads() == [("s0", 1), ("s1", 1), ("s2", 1)]
        page = await stores[0].list(limit=100)
        order = {r.dispatch_id: n for n, r in enumerate(reversed(page.dispatches))}
        claimed: dict[str, list[str]] = {"s0": [], "s1": [], "s2": []}
        while True:
            batch = await stores[len(made) % 2].claim("w", 30, limit=10)
            if not batch:
                break
            assert len({r.session_id for r in batch}) == len(batch)
            for record in batch:
                claimed[record.session_id].append(record.dispatch_id)
                assert await stores[1].complete(record.dispatch_id, "w", DispatchOutcome())
            assert all(count == 1 for _, count in await heads())
        assert sum(map(len, claimed.values())) == 60
        for ids in claimed.values():
            assert ids == sorted(ids, key=order.__getitem__)


async def test_concurrent_writers_of_one_run_keep_seq_strictly_increasing(
    database: PostgresDatabase, postgres_url: str
) -> None:
    async with PostgresDatabase(postgres_url, schema=database.schema) as other:
        stores = [database.run_store(), other.run_store()]
        run_id = "workflow:shared:1"
        await stores[0].create_run(RunRecord(run_id=run_id, workflow="shared", started_at=datetime.now(UTC)))
        written: list[tuple[int, int]] = []
        refused = 0

        async def writer(n: int) -> None:
            nonlocal refused
            while len(written) < 40:
                events = await stores[n].read_events(run_id)
                seq = events[-1].seq + 1 if events else 1
                await anyio.lowlevel.checkpoint()
                try:
                    await stores[n].append_events(run_id, [Event("log", {"by": n}, seq, run_id)])
                except ConfigError:
                    refused += 1
                else:
                    written.append((seq, n))

        async with anyio.create_task_group() as group:
            group.start_soon(writer, 0)
            group.start_soon(writer, 1)
        log = await stores[1].read_events(run_id)
        seqs = [e.seq for e in log]
        assert seqs == list(range(1, len(log) + 1)) and len(log) == len(written)
        assert sorted(written) == [(e.seq, e.data["by"]) for e in log]


async def test_a_silent_owner_loses_its_run_and_is_told_to_stop(database: PostgresDatabase) -> None:
    store = database.run_store(run_lease=0.2)
    run = RunRecord(run_id="workflow:silent:1", workflow="silent", started_at=datetime.now(UTC))
    await store.create_run(run)
    await store.append_events(run.run_id, [Event("log", {}, 1, run.run_id)])
    for _ in range(4):  # a heartbeating owner keeps its run however long it runs
        await anyio.sleep(0.1)
        assert await store.heartbeat(run.run_id) is None
    assert await store.request_cancel(run.run_id, "please stop")
    assert await store.heartbeat(run.run_id) == "please stop"
    await anyio.sleep(0.3)  # silent for longer than the lease
    assert await store.recover_interrupted() == [run.run_id]
    assert "interrupted" in (await store.heartbeat(run.run_id) or "")
    # the owner comes back: its events and its final record no longer change the ended run
    await store.append_events(run.run_id, [Event("log", {}, 2, run.run_id)])
    await store.finish_run(run.model_copy(update={"status": "completed"}))
    final = await store.get_run(run.run_id)
    assert final is not None and final.status == "interrupted"
    assert [e.type for e in await store.read_events(run.run_id)] == ["log", "run_end"]
    assert not await store.request_cancel(run.run_id, "too late")
