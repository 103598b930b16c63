"""``pyflue logs RUN_ID``: a run's recorded events, in order; ``--follow`` waits for the rest.

The events come from the store, written by whichever process runs the workflow, so a run started
in one terminal can be watched from another. Ctrl-C stops following; it never cancels the run. A
failed run's traceback is part of its ``run_end`` (the error's ``traceback``), shown under it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exits import COMPLETED, INTERRUPTED
from ..views import Mode, choose_mode, event_view

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "show the event log of a run"
DESCRIPTION = """\
Print every recorded event of a run, in order (a failed run's traceback with its end). With
--follow, keep printing the events of a live run (started by any process) until it ends. Ctrl-C
stops following; it does not cancel the run."""
EXAMPLES = """\
pyflue logs workflow:summarize:01J...
  pyflue logs workflow:summarize:01J... --follow
  pyflue logs workflow:summarize:01J... --jsonl --types tool_start,tool_end"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (workflow:<name>:<ulid>)")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing events until the run ends")
    parser.add_argument("--types", metavar="T1,T2", help="only these event types (comma-separated)")
    parser.add_argument("--after-seq", type=int, default=0, metavar="SEQ", help="only events after SEQ")
    parser.add_argument(
        "--jsonl", action="store_true", help="print every event as one JSON line, even on a terminal"
    )


def run(args: argparse.Namespace) -> int:
    import anyio

    mode = choose_mode(args, machine="jsonl")
    types = [t.strip() for t in args.types.split(",") if t.strip()] if args.types else None
    try:
        code: int = anyio.run(_logs, args, mode, types)
    except KeyboardInterrupt:
        return INTERRUPTED
    return code


async def _logs(args: argparse.Namespace, mode: Mode, types: list[str] | None) -> int:
    import anyio

    from pyflue.runs import get_run, iter_events

    from ..core import project_dir
    from ..signals import cancel_on_signals

    project = project_dir(args.project)
    await get_run(args.run_id, project=project)  # an unknown run: NotFoundError, exit 2
    view = event_view(mode, spinner=args.follow)
    with view:
        with anyio.CancelScope() as scope:
            async with cancel_on_signals(scope) as interrupts:
                async for event in iter_events(
                    args.run_id, after_seq=args.after_seq, types=types, follow=args.follow, project=project
                ):
                    view(event)
    if interrupts:
        return interrupts.exit_code
    if mode in ("live", "plain"):
        if view.formatter.summary is None:  # no run_end among what was shown (--types, or still running)
            _note(view, await get_run(args.run_id, project=project))
        view.print_summary()
        sys.stdout.flush()
    return COMPLETED


def _note(view: Any, record: Any) -> None:
    from ..format import Line, Summary

    if record.status == "running":
        view.print_line(Line(0, "dim", f"… still running; pyflue logs {record.run_id} --follow"))
    else:
        view.formatter.summary = Summary.of_run(record, view.formatter.models)
