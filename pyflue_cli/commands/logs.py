"""``pyflue logs RUN_ID``: a run's recorded events, in order; ``--follow`` waits for the rest.

The events come from the store, written by whichever process runs the workflow, so a run started
in one terminal can be watched from another. Ctrl-C stops following; it never cancels the run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exits import COMPLETED, INTERRUPTED
from ..views import Mode, choose_mode, event_view

__all__ = ["run"]


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
