"""A claimer process for the multi-process dispatch test: claims from one SQLite file and records,
one JSON line per step, what it claimed and completed.

    python dispatch_claimer.py DB WORKER BACKEND LEASE WORK LOG [--hang]

``--hang`` claims once and never finishes (the test kills it with SIGKILL, leaving live leases).
The process exits when no item is queued or running.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import anyio

from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord
from pyflue.stores.sqlite.dispatches import SQLiteDispatchStore


async def main(db: str, worker: str, lease: float, work: float, log: TextIO, hang: bool) -> None:
    store = SQLiteDispatchStore(db, poll_interval=0.02)

    def note(**fields: Any) -> None:
        log.write(json.dumps({"t": time.time(), **fields}) + "\n")
        log.flush()

    async def deliver(item: DispatchRecord) -> None:
        await anyio.sleep(work)
        done = await store.complete(item.dispatch_id, worker, DispatchOutcome(text=f"by {worker}"))
        note(step="complete", id=item.dispatch_id, attempt=item.attempts, ok=done is not None)

    while True:
        items = await store.claim(worker, lease, limit=3)
        for item in items:
            note(step="claim", id=item.dispatch_id, attempt=item.attempts, session=item.session_id)
        if hang and items:
            await anyio.sleep_forever()
        if items:
            async with anyio.create_task_group() as group:
                for item in items:
                    group.start_soon(deliver, item)
            continue
        queued = await store.list(status="queued", limit=1)
        running = await store.list(status="running", limit=1)
        if not queued.dispatches and not running.dispatches:
            return
        await store.wait_changed(0.05)


if __name__ == "__main__":
    db, worker, backend, lease, work, log_path = sys.argv[1:7]
    with open(log_path, "a", encoding="utf-8") as log:
        anyio.run(main, db, worker, float(lease), float(work), log, "--hang" in sys.argv, backend=backend)
