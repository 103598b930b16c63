"""A process that changes one run or one dispatch in PostgreSQL when told to, on stdin.

    python changer.py URL SCHEMA run RUN_ID
    python changer.py URL SCHEMA dispatch DISPATCH_ID

``run``: creates the run with event 1. ``dispatch``: claims the (enqueued) dispatch with a long lease and
stores event 1 of its delivery. Then it prints ``ready`` and obeys lines: ``event N`` stores event N and
prints ``ok``; ``end`` finishes the run (with ``run_end``) or completes the dispatch, and exits.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime

import anyio

from pyflue.events import Event
from pyflue.stores.dispatches import DispatchOutcome
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunRecord


async def main(url: str, schema: str, kind: str, target: str) -> None:
    async with PostgresDatabase(url, schema=schema, pool_size=2) as db:
        runs, dispatches = db.run_store(run_lease=120), db.dispatch_store()
        record = RunRecord(
            run_id=target,
            workflow="changed",
            started_at=datetime.now(UTC),
            owner_pid=os.getpid(),
            owner_host=socket.gethostname(),
        )
        if kind == "run":
            await runs.create_run(record)
            await runs.append_events(target, [Event("log", {"n": 1}, 1, target)])
        else:
            claimed = await dispatches.claim("changer", 120)
            assert [r.dispatch_id for r in claimed] == [target], claimed
            await dispatches.append_events(target, [Event("log", {"n": 1}, 1)])
        print("ready", flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[0] == "event":
                seq = int(command[1])
                if kind == "run":
                    await runs.append_events(target, [Event("log", {"n": seq}, seq, target)])
                else:
                    await dispatches.append_events(target, [Event("log", {"n": seq}, seq)])
                print("ok", flush=True)
            elif command[0] == "end":
                if kind == "run":
                    end = Event("run_end", {"status": "completed"}, 99, target)
                    final = record.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)})
                    await runs.finish_run(final, [end])
                else:
                    await dispatches.complete(target, "changer", DispatchOutcome(text="done"))
                return


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
