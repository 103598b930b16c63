"""A claimer process of the multi-process PostgreSQL test: claims dispatches from one database, as a
worker on another host would, and logs one JSON line per step.

    python claimer.py URL SCHEMA WORKER LEASE LOG

It runs in its own copy of the project (its working directory) and answers with a line of the
project's ``answer.txt``. It exits when no item is queued or running.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import anyio

from pyflue.stores.dispatches import DispatchOutcome, DispatchRecord
from pyflue.stores.postgres import PostgresDatabase


async def main(url: str, schema: str, worker: str, lease: float, log: TextIO) -> None:
    answer = (await anyio.Path("answer.txt").read_text()).strip()

    def note(**fields: Any) -> None:
        log.write(json.dumps({"t": time.time(), **fields}) + "\n")
        log.flush()

    async with PostgresDatabase(url, schema=schema, pool_size=4) as db:
        store = db.dispatch_store()

        async def deliver(item: DispatchRecord) -> None:
            await anyio.sleep(0.001)
            done = await store.complete(
                item.dispatch_id, worker, DispatchOutcome(text=f"{answer} by {worker}")
            )
            note(step="complete", id=item.dispatch_id, attempt=item.attempts, ok=done is not None)

        while True:
            items = await store.claim(worker, lease, limit=4)
            for item in items:
                note(step="claim", id=item.dispatch_id, attempt=item.attempts, session=item.session_id)
            if items:
                async with anyio.create_task_group() as group:
                    for item in items:
                        group.start_soon(deliver, item)
                continue
            queued = await store.list(status="queued", limit=1)
            running = await store.list(status="running", limit=1)
            if not queued.dispatches and not running.dispatches:
                return
            await store.wait_changed(0.5)


if __name__ == "__main__":
    url, schema, worker, lease, log_path, backend = sys.argv[1:7]
    with open(log_path, "a", encoding="utf-8") as log:
        anyio.run(main, url, schema, worker, float(lease), log, backend=backend)
