"""``pyflue resume RUN_ID``: continue an interrupted resumable run where it stopped.

The resume itself is the core's (``pyflue.resume_run``): journaled steps return their
recorded results and the run continues live from the first step the journal does not hold. This
command prints the final record as JSON and exits 0 when the run completed, 1 when it ended
otherwise (``pyflue logs RUN_ID`` shows why), 2 when it could not be resumed at all.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..exits import COMPLETED, FAILED, one_line, print_error

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "continue an interrupted resumable run"
DESCRIPTION = """\
Continue an interrupted run of a resumable workflow (`resumable = True`) in this process: steps in
its journal return their recorded results (no model request, no tool call again), and the run goes
on live from the first step that is not. Prints the final record as JSON."""
EXAMPLES = """\
pyflue runs --status interrupted
  pyflue resume workflow:summarize:01J...
  pyflue logs workflow:summarize:01J...     # run_resume shows what was replayed"""

_RESULT_KEYS = ("run_id", "workflow", "status", "result", "error", "duration_ms", "usage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the id of an interrupted run")


def run(args: argparse.Namespace) -> int:
    import anyio

    code: int = anyio.run(_resume, args)
    return code


async def _resume(args: argparse.Namespace) -> Any:
    from pyflue import resume_run

    from ..core import load_project
    from ..jsontext import record_fields, write_json

    project = load_project(args.project)
    record = await resume_run(args.run_id, project=project)
    write_json(record_fields(record, _RESULT_KEYS))
    if record.status == "completed":
        return COMPLETED
    print_error(one_line(record.error or {"type": "WorkflowError", "message": f"run ended {record.status}"}))
    return FAILED
