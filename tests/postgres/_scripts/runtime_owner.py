"""A process whose runtime keeps a project's runs in PostgreSQL and owns one until it is killed.

    python runtime_owner.py URL ROOT RUN_ID [LEASE]

It opens ``Runtime(database_url=URL, run_lease_seconds=LEASE)`` (without LEASE the runtime reads
``PYFLUE_RUN_LEASE_SECONDS``) and runs the project's ``hang`` workflow as RUN_ID; the workflow prints
``ready`` and waits, while the run's cancel poll heartbeats for it.
"""

from __future__ import annotations

import sys

import anyio

from pyflue.project import Project, invoke_workflow
from pyflue.runtime import Runtime


async def main(url: str, root: str, run_id: str, *lease: str) -> None:
    async with Runtime(database_url=url, run_lease_seconds=float(lease[0]) if lease else None):
        await invoke_workflow(await Project.load_async(root), "hang", {}, run_id=run_id)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:])
