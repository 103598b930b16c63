"""A process that follows a run's log through PostgreSQL, woken by NOTIFY.

    python follower.py URL SCHEMA RUN_ID LOG

It logs one JSON line per event it reads (with the time it read it) and one per wake-up of its watch,
saying whether a notification woke it or its 60 s timeout passed; it ends after the run's ``run_end``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

import anyio

from pyflue.stores.postgres import PostgresDatabase

#: Far longer than the test: a wake-up within it came from a notification, not from a timeout.
TIMEOUT = 60.0


async def main(url: str, schema: str, run_id: str, log: TextIO) -> None:
    async with PostgresDatabase(url, schema=schema, pool_size=2) as db:
        store = db.run_store()
        async with await store.watch(run_id) as watch:
            print("ready", flush=True)
            last = 0
            while True:
                for event in await store.read_events(run_id, after_seq=last):
                    last = event.seq
                    log.write(json.dumps({"seq": event.seq, "type": event.type, "seen": time.time()}) + "\n")
                    log.flush()
                    if event.type == "run_end":
                        return
                woke = await watch.wait(TIMEOUT)
                log.write(json.dumps({"woke": woke}) + "\n")


if __name__ == "__main__":
    with open(sys.argv[4], "a", encoding="utf-8") as log:
        anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], log, backend="trio")
