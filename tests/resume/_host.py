"""Runs or resumes one ``travel`` run of a test project in this process, as one host would:
``run|resume <root> <run_id> [<postgresql url> <schema>]``; prints the final record as JSON. With
PostgreSQL the run's lease is one second, so a killed host's run is soon interrupted."""

from __future__ import annotations

import sys
from typing import Any

import anyio

from pyflue import resume_run
from pyflue.project import Project, invoke_workflow
from pyflue.runtime import Runtime


async def main(mode: str, root: str, run_id: str, *database: str) -> None:
    async with Runtime():
        stores: dict[str, Any] = {}
        if database:
            from pyflue.stores.postgres import PostgresDatabase

            db = PostgresDatabase(database[0], schema=database[1], pool_size=3)
            stores = {"run_store": db.run_store(run_lease=1.0), "session_store": db.session_store()}
        project = await Project.load_async(root)
        if mode == "run":
            record = await invoke_workflow(project, "travel", {}, run_id=run_id, **stores)
        else:
            record = await resume_run(run_id, project=project, **stores)
        print(record.model_dump_json(), flush=True)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:])
