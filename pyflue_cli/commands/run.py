"""``pyflue run WORKFLOW``: run a workflow of the project, show it, exit with how it ended.

The run itself is the core's (``invoke_workflow``): it records the run and every event in the
project's store. This command picks the output, turns Ctrl-C into a clean cancellation, and maps
the final record to an exit code: a recorded run exits 0 when it completed and 1 otherwise (it
exists, and ``pyflue logs`` shows it); 2 is kept for what stopped before a run was recorded.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

from ..arguments import output_flags
from ..exits import COMPLETED, FAILED, one_line, print_error
from ..views import Mode, choose_mode, event_view, note_offline_model

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "run a workflow"
DESCRIPTION = """\
Run a workflow of the project and record it in the project's run store.
On a terminal: a live view of the run (text, tool calls, tasks, logs) and a summary.
Otherwise: the result as JSON on stdout; errors on stderr, one line (-v: the traceback first)."""
EXAMPLES = """\
pyflue run summarize --payload '{"text": "..."}'
  pyflue run summarize --payload @payload.json
  echo '{"text": "..."}' | pyflue run summarize --payload -
  pyflue run summarize --payload '{...}' --json      # {run_id, status, result, ...}
  pyflue run summarize --payload '{...}' --jsonl     # every event, one JSON per line
  PYFLUE_MODEL=test pyflue run summarize --payload '{...}'   # offline"""

_RESULT_KEYS = ("run_id", "workflow", "status", "result", "error", "duration_ms", "usage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name (workflows/<name>.py)")
    parser.add_argument(
        "--payload",
        "-p",
        metavar="JSON",
        help="the payload: inline JSON, @FILE, or - for standard input (default: none, i.e. {})",
    )
    output_flags(
        parser,
        stream="show the live view (text, tool calls, tasks, logs) even when stdout is not a terminal",
        json="print one JSON object when the run ends: run_id, status, result, error, ...",
        jsonl="print every event of the run as one JSON line, as it happens",
    )
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="cancel the run after SECONDS")


def run(args: argparse.Namespace) -> int:
    from ..payload import read_payload

    payload = read_payload(args.payload)  # a bad payload fails before the core is even imported
    mode = choose_mode(args)
    import anyio

    code: int = anyio.run(_run, args, payload, mode)
    return code


async def _run(args: argparse.Namespace, payload: Any, mode: Mode) -> int:
    import anyio

    from pyflue.ids import new_run_id
    from pyflue.project import invoke_workflow
    from pyflue.runs import cancel_run, get_run

    from ..core import load_project, lookup
    from ..signals import cancel_on_signals

    project = load_project(args.project)
    lookup(project, "workflow", args.workflow)
    run_id = new_run_id(args.workflow)
    view = event_view(mode, show_run_error=False)  # the error goes to stderr, once
    record: Any = None

    async def cancel(reason: str) -> bool:
        # Through the store, so the record says why (else the core reports "the caller was cancelled").
        return await cancel_run(run_id, reason=reason, project=project)

    with view if view is not None else nullcontext():
        with anyio.CancelScope() as scope:
            async with cancel_on_signals(scope, cancel) as interrupts:
                record = await invoke_workflow(
                    project, args.workflow, payload, on_event=view, timeout=args.timeout, run_id=run_id
                )
    if record is None:  # cancelled by a signal: the core recorded the run before unwinding
        with anyio.CancelScope(shield=True):
            record = await get_run(run_id, project=project)
    code = _finish(record, mode, view, interrupts.exit_code if interrupts else None, args.verbose)
    if code == COMPLETED:
        note_offline_model(mode, view)
    return code


def _finish(record: Any, mode: Mode, view: Any, signal_code: int | None, verbose: bool) -> int:
    from ..jsontext import record_fields, write_json

    status = record.status
    if mode == "json":
        write_json(record_fields(record, _RESULT_KEYS))
    elif mode == "quiet" and status == "completed":
        write_json(record.result)
    elif mode in ("live", "plain"):
        if status == "completed":
            view.print_result(record.result)
        view.print_summary()
        sys.stdout.flush()
    if status == "completed":
        return COMPLETED
    if signal_code is not None:
        print_error(f"interrupted; run {record.run_id} {status}")
        return signal_code
    error = record.error or {}
    if error:
        print_error(one_line(_hinted(error)), error.get("traceback") if verbose else None)
    else:
        print_error(f"run {record.run_id} ended {status}")
    return FAILED  # the run exists and did not complete, whatever stopped it


def _hinted(error: dict[str, Any]) -> dict[str, Any]:
    """A missing key: make sure the line says how to run offline, whatever raised it."""
    message = str(error.get("message", ""))
    if error.get("type") == "ConfigError" and "is not set" in message and "PYFLUE_MODEL" not in message:
        return {**error, "message": message + " (or set PYFLUE_MODEL=test to run offline)"}
    return error
