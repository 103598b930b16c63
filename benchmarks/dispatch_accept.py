"""Accepted dispatches per second, with durable commit, for the memory and SQLite dispatch stores.

    python benchmarks/dispatch_accept.py [--items 20000] [--backend asyncio|trio] [--full-sync]

Each row enqueues ``--items`` dispatches from 1, 10 or 100 concurrent enqueuers (spread over 50
sessions) on a fresh store; every ``enqueue`` returns only after its own row is committed (SQLite
group-commits concurrent calls). SQLite runs as the project database does (WAL, ``synchronous=NORMAL``:
a commit survives the process being killed; ``--full-sync`` also fsyncs every commit, surviving power
loss). A second table times claims (claim + complete of 1 000 items) with 1 000 and 100 000 items
queued, to show the claim cost does not grow with the queue.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

from pyflue.stores.dispatch_memory import MemoryDispatchStore
from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord, DispatchStore
from pyflue.stores.sqlite import SQLiteDatabase
from pyflue.stores.sqlite.dispatches import SQLiteDispatchStore

SESSIONS = 50


def _record(n: int) -> DispatchRecord:
    return DispatchRecord(agent="bench", instance_id="inst", session_id=f"s{n % SESSIONS}", input=str(n))


async def _accept(store: DispatchStore, items: int, enqueuers: int) -> float:
    records = [_record(n) for n in range(items)]
    share = items // enqueuers

    async def enqueuer(start: int) -> None:
        for record in records[start : start + share]:
            await store.enqueue(record)

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for k in range(enqueuers):
            group.start_soon(enqueuer, k * share)
    return share * enqueuers / (time.perf_counter() - began)


def _sqlite(directory: Path, name: str, full_sync: bool) -> tuple[SQLiteDispatchStore, SQLiteDatabase]:
    db = SQLiteDatabase(directory / f"{name}.db")
    if full_sync:
        # SQLiteDatabase runs every call in a transaction, and this pragma may not be changed inside
        # one: step out of it, set it on the shared connection, and step back in.
        db.call(lambda conn: [conn.execute(sql) for sql in ("COMMIT", "PRAGMA synchronous=FULL", "BEGIN")])
    return SQLiteDispatchStore(db), db


async def _claims(store: DispatchStore, queued: int) -> float:
    """Microseconds per claimed-and-completed item with ``queued`` items waiting."""
    async with anyio.create_task_group() as group:
        for k in range(10):
            group.start_soon(_fill, store, k, queued // 10)
    began = time.perf_counter()
    done = 0
    while done < 1000:
        for record in await store.claim("bench", 30, limit=10):
            await store.complete(record.dispatch_id, "bench", DispatchOutcome(text="ok"))
            done += 1
    return (time.perf_counter() - began) / done * 1e6


async def _fill(store: DispatchStore, k: int, count: int) -> None:
    for n in range(count):
        session = f"s{(k * count + n) % 1000}"
        await store.enqueue(DispatchRecord(agent="bench", instance_id="inst", session_id=session, input="x"))


async def main(items: int, full_sync: bool) -> None:
    print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}, {items} items per row\n")
    print(f"{'store':<8} {'enqueuers':>9} {'accepted/s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for enqueuers in (1, 10, 100):
            rate = await _accept(MemoryDispatchStore(), items, enqueuers)
            print(f"{'memory':<8} {enqueuers:>9} {rate:>11,.0f}")
        for enqueuers in (1, 10, 100):
            store, db = _sqlite(directory, f"accept-{enqueuers}", full_sync)
            rate = await _accept(store, items, enqueuers)
            db.close()
            print(f"{'sqlite':<8} {enqueuers:>9} {rate:>11,.0f}")
        print(f"\n{'store':<8} {'queued':>9} {'µs per claim+complete':>22}")
        for queued in (1_000, 100_000):
            store, db = _sqlite(directory, f"claim-{queued}", full_sync)
            cost = await _claims(store, queued)
            db.close()
            print(f"{'sqlite':<8} {queued:>9,} {cost:>22,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--full-sync", action="store_true", help="fsync every commit (synchronous=FULL)")
    args = parser.parse_args()
    anyio.run(main, args.items, args.full_sync, backend=args.backend)
