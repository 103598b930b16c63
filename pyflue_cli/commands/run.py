"""``pyflue run WORKFLOW``: run a workflow of the project, show it, exit with how it ended.

The run itself is the core's (``invoke_workflow``): it records the run and every event in the
project's store. This command picks the output, turns Ctrl-C into a clean cancellation, and maps
the final record to an exit code.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

from ..exits import COMPLETED, FAILED, exit_code_for, one_line
from ..payload import read_payload
from ..views import Mode, choose_mode, event_view

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)  # a bad payload fails before the core is even imported
    mode = choose_mode(args)
    import anyio

    code: int = anyio.run(_run, args, payload, mode)
    return code


async def _run(args: argparse.Namespace, payload: Any, mode: Mode) -> int:
    import anyio

    from pyflue.ids import new_run_id
    from pyflue.runs import cancel_run, get_run
    from pyflue.project import invoke_workflow

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
    return _finish(record, mode, view, interrupts.exit_code if interrupts else None)


def _finish(record: Any, mode: Mode, view: Any, signal_code: int | None) -> int:
    status = record.status
    error = record.error
    if mode == "json":
        from ..output import write_json

        write_json(
            {
                "run_id": record.run_id,
                "workflow": record.workflow,
                "status": status,
                "result": record.result,
                "error": error,
                "duration_ms": record.duration_ms,
                "usage": record.usage.to_dict() if hasattr(record.usage, "to_dict") else record.usage,
            }
        )
    elif mode == "quiet" and status == "completed":
        from ..output import write_json

        write_json(record.result)
    elif mode in ("live", "plain"):
        if status == "completed":
            view.print_result(record.result)
        view.print_summary()
        sys.stdout.flush()
    if status == "completed":
        return COMPLETED
    if signal_code is not None:
        print(f"pyflue: interrupted; run {record.run_id} {status}", file=sys.stderr)
        return signal_code
    if error:
        print(f"pyflue: {one_line(_hinted(error))}", file=sys.stderr)
        return exit_code_for(error)
    print(f"pyflue: run {record.run_id} ended {status}", file=sys.stderr)
    return FAILED


def _hinted(error: dict[str, Any]) -> dict[str, Any]:
    """A missing key: make sure the line says how to run offline, whatever raised it."""
    message = str(error.get("message", ""))
    if error.get("type") == "ConfigError" and "is not set" in message and "PYFLUE_MODEL" not in message:
        return {**error, "message": message + " (or set PYFLUE_MODEL=test to run offline)"}
    return error
