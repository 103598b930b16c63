"""A separate process for the cross-process run tests (run with ``sys.executable``).

``run <project> <workflow> <run_id> <payload json> <backend>``: runs the workflow, printing
``started <run_id>`` once its record exists and ``ended <status>`` at the end.
``recover <db> <backend>``: opens the run store (which recovers interrupted runs at its first
use) and prints ``<run_id> <status>`` per run.
"""

from __future__ import annotations

import functools
import json
import sys

import anyio


async def _run(project: str, workflow: str, run_id: str, payload: str) -> None:
    from pyflue import get_run, invoke_workflow

    invoke = functools.partial(
        invoke_workflow, project, workflow, json.loads(payload), run_id=run_id, cancel_poll_interval=0.05
    )
    async with anyio.create_task_group() as tg:
        print("started", await tg.start(invoke), flush=True)
    record = await get_run(run_id, project=project)
    print("ended", record.status, flush=True)


async def _recover(db: str) -> None:
    from pyflue.stores.sqlite import SQLiteRunStore

    for record in await SQLiteRunStore(db).list_runs(limit=100):
        print(record.run_id, record.status, flush=True)


def main() -> None:
    command, *args = sys.argv[1:]
    backend = args.pop()
    if command == "run":
        anyio.run(_run, *args, backend=backend)
    elif command == "recover":
        anyio.run(_recover, *args, backend=backend)
    else:  # pragma: no cover
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
