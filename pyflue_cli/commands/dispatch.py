"""``pyflue dispatch AGENT INSTANCE --input TEXT``: hand input to an agent durably, for a worker.

The core's :func:`~pyflue.dispatching.dispatch` commits the input to the project's dispatch store
before it returns a receipt; this command prints that receipt and exits 0. A worker
(``pyflue worker``, or any process running a ``Dispatcher``) delivers it later, in order per
(agent, instance, session). With ``--wait`` the command also waits, from this process, for the
outcome: it exits 0 when the input was ``delivered`` and 1 when it ended ``failed`` or
``cancelled`` (it exists: ``pyflue dispatches --id INSTANCE`` lists it). Waiting is only watching:
``--timeout`` or Ctrl-C stop the waiting, never the dispatch, which stays in the store and is
delivered by the next worker.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..arguments import output_flags
from ..exits import COMPLETED, FAILED, CliError, one_line, print_error, print_note
from ..views import Mode, choose_mode
from .worker import seconds

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "hand input to an agent, delivered by a worker"
DESCRIPTION = """\
Dispatch input to an instance of one of the project's agents. It is committed to the project's
dispatch store before the receipt is printed, and a worker (pyflue worker) delivers it, in order
per agent, instance and session. --wait waits for the outcome (exit 1 if it failed or was
cancelled); --key makes the dispatch idempotent."""
EXAMPLES = """\
pyflue dispatch assistant case-42 --input "Where is my order?" --session billing
  pyflue dispatch assistant case-42 --input "Where is my order?" --key order-1234
  echo "Summarise the ticket" | pyflue dispatch assistant case-42 --input -
  pyflue dispatch assistant case-42 --input "Hello" --wait --timeout 60 --json"""

_RECEIPT_KEYS = ("dispatch_id", "agent", "instance_id", "session_id", "accepted_at", "status")
_OUTCOME_KEYS = (
    "dispatch_id",
    "agent",
    "instance_id",
    "session_id",
    "key",
    "status",
    "attempts",
    "worker",
    "accepted_at",
    "updated_at",
    "cancel_requested",
    "outcome",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT", help="the agent's name (agents/<name>.py)")
    parser.add_argument("instance", metavar="INSTANCE", help="the agent instance's id, e.g. a customer id")
    parser.add_argument(
        "--input",
        "-i",
        required=True,
        metavar="TEXT",
        help="the input (what a prompt takes), or - to read it from standard input",
    )
    parser.add_argument("--session", "-s", default="default", metavar="ID", help="session id (default)")
    parser.add_argument(
        "--key",
        metavar="KEY",
        help="idempotency key: the same key for the same target returns the first receipt, enqueues nothing",
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait until a worker delivered it (or it failed/was cancelled)"
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="with --wait: stop waiting after SECONDS (exit 1; the dispatch stays queued)",
    )
    output_flags(
        parser,
        json="print one JSON object: the receipt, or with --wait the final record (status, outcome, ...)",
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout only applies to --wait (a dispatch itself never times out)")
    text = sys.stdin.read() if args.input == "-" else args.input
    mode = choose_mode(args, machine="quiet")
    import anyio

    code: int = anyio.run(_dispatch, args, text, mode)
    return code


async def _dispatch(args: argparse.Namespace, text: str, mode: Mode) -> int:
    from pyflue.dispatching import dispatch

    from ..core import load_project, lookup

    project = load_project(args.project)
    lookup(project, "agent", args.agent)  # an unknown or broken agent: one line listing the agents
    receipt = await dispatch(
        args.agent, id=args.instance, input=text, session=args.session, key=args.key, project=project
    )
    if not args.wait:
        _print_receipt(receipt, mode)
        return COMPLETED
    if mode in ("live", "plain"):
        _print_receipt(receipt, mode)
        print_note("waiting for a worker (pyflue worker) to deliver it; Ctrl-C stops waiting, not it")
    return await _wait(args, receipt.dispatch_id, project, mode)


def _print_receipt(receipt: Any, mode: Mode) -> None:
    from ..jsontext import write_json

    if mode == "json":
        write_json({key: getattr(receipt, key) for key in _RECEIPT_KEYS})
    elif mode == "quiet":
        print(receipt.dispatch_id, flush=True)
    else:
        target = f"{receipt.agent} / {receipt.instance_id} / session {receipt.session_id}"
        print(f"{receipt.dispatch_id}  {receipt.status}  {target}", flush=True)


async def _wait(args: argparse.Namespace, dispatch_id: str, project: Any, mode: Mode) -> int:
    import anyio

    from pyflue.dispatching import get_dispatch, wait_dispatch

    from ..signals import cancel_on_signals

    record: Any = None
    timed_out = False
    with anyio.CancelScope() as scope:
        async with cancel_on_signals(scope) as interrupts:
            try:
                record = await wait_dispatch(dispatch_id, args.timeout, project=project)
            except TimeoutError:
                timed_out = True
    if record is None:
        with anyio.CancelScope(shield=True):
            status = (await get_dispatch(dispatch_id, project=project)).status
        if timed_out:
            print_error(
                f"timed out after {args.timeout:g} s waiting for {dispatch_id}; it is {status} and stays "
                "in the store for a worker (see pyflue dispatches)"
            )
            return FAILED
        print_error(f"interrupted; {dispatch_id} is {status} and stays in the store for a worker")
        return interrupts.exit_code
    return _finish(record, mode)


def _finish(record: Any, mode: Mode) -> int:
    from ..jsontext import record_fields, write_json

    outcome = record.outcome
    if mode == "json":
        write_json(record_fields(record, _OUTCOME_KEYS))
    elif record.status == "delivered" and outcome is not None:
        text = outcome.text or ""
        if outcome.output is not None and not text:
            from ..jsontext import dumps

            text = dumps(outcome.output)
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
        if mode != "quiet":
            print(f"✓ {record.status} after {record.attempts} attempt(s) · operation {outcome.operation_id}")
        sys.stdout.flush()
    if record.status == "delivered":
        return COMPLETED
    error = outcome.error if outcome is not None else None
    if error:
        print_error(f"{record.dispatch_id} {record.status}: {one_line(error)}")
    else:
        why = f": {record.cancel_requested}" if record.cancel_requested else ""
        print_error(f"{record.dispatch_id} {record.status}{why}")
    return FAILED  # it exists and was not delivered
