"""The PostgreSQL stores beside the SQLite ones, in the same run.

    python benchmarks/postgres_stores.py [--url postgresql://...] [--backend asyncio|trio]

Without ``--url`` it starts a throwaway PostgreSQL cluster with the server's default durability (every
commit flushed to disk; ``synchronous_commit=on``), as tests/postgres/server.py does for the tests. SQLite
runs as the project database does (WAL, ``synchronous=NORMAL``: a commit survives the process being
killed, not a power loss). Rows:

* accepted dispatches/s: 5 000 ``enqueue`` calls from 100 concurrent callers (group commit; each call
  returns after its own commit);
* delivered dispatches/s in one process: claim (4 at a time) + complete, 2 000 items, 4 claimer tasks;
* persisted run events/s: ``append_events`` in batches of 50 (a run's flush) and of 1;
* session append: µs per ``append`` of one message to a session that holds 10, and 1 000, messages;
* the worker-thread hop the PostgreSQL stores pay on every call (``SELECT 1`` through the store's
  database in a worker thread, against the same call made directly), and the time from a writer's
  ``append_events`` call to a follower's wake-up through NOTIFY (the commit's flush included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.postgres.server

from pyflue.events import Event
from pyflue.models.messages import TextPart, UserMessage
from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord, DispatchStore
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunRecord, RunStore
from pyflue.stores.sessions import SessionKey, SessionStore
from pyflue.stores.sqlite import SQLiteDatabase, SQLiteDispatchStore, SQLiteRunStore, SQLiteSessionStore
from tests.postgres.server import Cluster, find_bindir

SESSIONS = 50


def _record(n: int) -> DispatchRecord:
    return DispatchRecord(agent="bench", instance_id="inst", session_id=f"s{n % SESSIONS}", input=str(n))


async def accepted_per_s(store: DispatchStore, items: int = 5000, callers: int = 100) -> float:
    records = [_record(n) for n in range(items)]
    share = items // callers

    async def caller(start: int) -> None:
        for record in records[start : start + share]:
            await store.enqueue(record)

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for k in range(callers):
            group.start_soon(caller, k * share)
    return share * callers / (time.perf_counter() - began)


async def delivered_per_s(store: DispatchStore, items: int = 2000, claimers: int = 4) -> float:
    for start in range(0, items, 500):
        async with anyio.create_task_group() as group:
            for n in range(start, start + 500):
                group.start_soon(store.enqueue, _record(n))
    done = 0

    async def claimer(name: str) -> None:
        nonlocal done
        while True:
            batch = await store.claim(name, 30, limit=4)
            if not batch:
                if done >= items:
                    return
                await store.wait_changed(0.05)
                continue
            for record in batch:
                await store.complete(record.dispatch_id, name, DispatchOutcome(text="ok"))
                done += 1

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for k in range(claimers):
            group.start_soon(claimer, f"c{k}")
    return items / (time.perf_counter() - began)


async def events_per_s(store: RunStore, batch: int, total: int) -> float:
    run_id = f"workflow:bench:{batch}:{time.monotonic_ns()}"
    await store.create_run(RunRecord(run_id=run_id, workflow="bench", started_at=datetime.now(UTC)))
    events = [Event("text_delta", {"text": "token "}, seq, run_id) for seq in range(1, total + 1)]
    began = time.perf_counter()
    for start in range(0, total, batch):
        await store.append_events(run_id, events[start : start + batch])
    return total / (time.perf_counter() - began)


async def append_us(store: SessionStore, held: int, appends: int = 200) -> float:
    key = SessionKey("bench", "inst", f"held-{held}-{time.monotonic_ns()}")
    message = [UserMessage([TextPart("a message of ordinary length, " * 4)])]
    await store.append(key, message * held)
    began = time.perf_counter()
    for _ in range(appends):
        await store.append(key, message)
    return (time.perf_counter() - began) / appends * 1e6


async def hop_us(db: PostgresDatabase, calls: int = 2000) -> tuple[float, float]:
    def select(conn: Any) -> None:
        conn.execute("SELECT 1").fetchone()

    await db.run(select)
    began = time.perf_counter()
    for _ in range(calls):
        db.call(select)  # directly on the event loop's thread: what the async API would cost at best
    direct = (time.perf_counter() - began) / calls * 1e6
    began = time.perf_counter()
    for _ in range(calls):
        await db.run(select)
    return direct, (time.perf_counter() - began) / calls * 1e6


async def notify_ms(db: PostgresDatabase, url: str, rounds: int = 50) -> float:
    store = db.run_store()
    run_id = f"workflow:notify:{time.monotonic_ns()}"
    await store.create_run(RunRecord(run_id=run_id, workflow="notify", started_at=datetime.now(UTC)))
    latencies: list[float] = []
    committed = [0.0]
    async with PostgresDatabase(url, schema=db.schema) as other:
        writer = other.run_store()
        async with await store.watch(run_id) as watch:
            for seq in range(1, rounds + 1):
                async with anyio.create_task_group() as group:

                    async def wait() -> None:
                        assert await watch.wait(10)
                        latencies.append(time.perf_counter() - committed[0])

                    group.start_soon(wait)
                    await anyio.sleep(0.005)
                    committed[0] = time.perf_counter()
                    await writer.append_events(run_id, [Event("log", {}, seq, run_id)])
    return statistics.median(latencies) * 1000


async def measure(url: str, directory: Path) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    schema = f"bench_{time.monotonic_ns()}"
    async with PostgresDatabase(url, schema=schema) as pg, SQLiteDatabase(directory / "bench.db") as lite:
        await pg.upgrade()

        async def both(label: str, fmt: str, run: Callable[[Any, Any], Awaitable[float]]) -> None:
            p = await run(pg, "pg")
            s = await run(lite, "sqlite")
            rows.append((label, fmt.format(p), fmt.format(s)))

        def dispatch(db: Any, kind: str) -> DispatchStore:
            return db.dispatch_store() if kind == "pg" else SQLiteDispatchStore(db)

        def runs(db: Any, kind: str) -> RunStore:
            return db.run_store() if kind == "pg" else SQLiteRunStore(db)

        def sessions(db: Any, kind: str) -> SessionStore:
            return db.session_store() if kind == "pg" else SQLiteSessionStore(db)

        async def clear(db: Any, kind: str) -> None:
            tables = ("dispatch_items", "dispatch_attempts", "dispatch_events")
            await db.run(lambda conn: [conn.execute(f"DELETE FROM {table}") for table in tables])

        await both(
            "accepted dispatches/s (100 callers)", "{:,.0f}", lambda d, k: accepted_per_s(dispatch(d, k))
        )

        async def delivered(db: Any, kind: str) -> float:
            await clear(db, kind)
            return await delivered_per_s(dispatch(db, kind))

        await both("delivered dispatches/s (1 process, 4 claimers)", "{:,.0f}", delivered)
        await both(
            "run events/s, batches of 50", "{:,.0f}", lambda d, k: events_per_s(runs(d, k), 50, 20_000)
        )
        await both("run events/s, batches of 1", "{:,.0f}", lambda d, k: events_per_s(runs(d, k), 1, 1000))
        await both("session append, 10 held (µs)", "{:,.0f}", lambda d, k: append_us(sessions(d, k), 10))
        await both("session append, 1 000 held (µs)", "{:,.0f}", lambda d, k: append_us(sessions(d, k), 1000))
        direct, hopped = await hop_us(pg)
        rows.append(("SELECT 1 on the loop thread (µs)", f"{direct:,.0f}", "-"))
        rows.append(("SELECT 1 through a worker thread (µs)", f"{hopped:,.0f}", "-"))
        rows.append(
            (
                "append + commit + NOTIFY wake-up of a follower, median (ms)",
                f"{await notify_ms(pg, url):.1f}",
                "-",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway durable cluster)")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        cluster = Cluster(find_bindir())
        cluster.start(durable=True)
        url = cluster.url
    try:
        with tempfile.TemporaryDirectory() as directory:
            rows = anyio.run(measure, url, Path(directory), backend=args.backend)
    finally:
        if cluster is not None:
            cluster.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'PostgreSQL':>12}  {'SQLite':>12}   ({args.backend})")
    for label, pg, lite in rows:
        print(f"{label:{width}}  {pg:>12}  {lite:>12}")


if __name__ == "__main__":
    main()
