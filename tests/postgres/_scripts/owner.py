"""A process that owns a workflow run in PostgreSQL and heartbeats for it until it is killed.

    python owner.py URL SCHEMA RUN_ID LEASE

It creates the run, writes three events, prints ``ready`` and then heartbeats every tenth of the lease.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime

import anyio

from pyflue.events import Event
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunRecord


async def main(url: str, schema: str, run_id: str, lease: float) -> None:
    async with PostgresDatabase(url, schema=schema, pool_size=2) as db:
        store = db.run_store(run_lease=lease)
        record = RunRecord(
            run_id=run_id,
            workflow="owned",
            started_at=datetime.now(UTC),
            owner_pid=os.getpid(),
            owner_host=socket.gethostname(),
        )
        await store.create_run(record)
        await store.append_events(run_id, [Event("log", {"n": n}, n, run_id) for n in (1, 2, 3)])
        print("ready", flush=True)
        while True:
            await store.heartbeat(run_id)
            await anyio.sleep(lease / 10)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
