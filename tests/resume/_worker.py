"""Runs or resumes one run of a test project in this process: ``run <root> <run_id>`` or
``resume <root> <run_id>``; prints the final record as JSON. The parent kills it with SIGKILL."""

from __future__ import annotations

import sys

import anyio

from pyflue import resume_run
from pyflue.journal import IDEMPOTENT_ATTRIBUTE  # noqa: F401  (the journal module must import alone)
from pyflue.project import Project, invoke_workflow


async def main(mode: str, root: str, run_id: str) -> None:
    if mode == "run":
        record = await invoke_workflow(root, "trip", {"city": "Oslo"}, run_id=run_id)
    else:
        project = await Project.load_async(root)
        record = await resume_run(run_id, project=project)
    print(record.model_dump_json())


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
