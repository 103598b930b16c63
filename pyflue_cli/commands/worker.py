"""``pyflue worker``: deliver the project's dispatched input until stopped.

The process runs the core's :class:`~pyflue.dispatching.Dispatcher` on the project. It prints one
line when it starts (the worker's name, as leases and attempts record it), then delivers until
Ctrl-C or SIGTERM. The stop is graceful: no new item is claimed, deliveries in flight get the
dispatcher's grace period to finish, and what is still running after it is handed back (another
worker delivers it again, as after a crash). A stop that was asked for is the normal end of a
worker, so it exits 0, like ``pyflue serve``; a second signal exits at once (128 + the signal).
"""

from __future__ import annotations

import argparse
import math

from ..arguments import positive
from ..exits import COMPLETED, print_error, print_note

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run", "seconds"]

HELP = "deliver dispatched input (runs until Ctrl-C)"
DESCRIPTION = """\
Run a worker that delivers the input dispatched to the project's agents (pyflue dispatch, or
dispatch() from Python), in order per agent, instance and session, up to --concurrency sessions at
once. Ctrl-C or SIGTERM stops it gracefully: deliveries in flight finish first. Several workers
may share one project store; a worker that dies is taken over after --lease seconds.
--auto-resume also resumes interrupted resumable workflow runs (resumable = True): at start and
every few seconds; of several workers only one resumes a given run."""
EXAMPLES = """\
pyflue worker
  pyflue worker --concurrency 8 --lease 15
  pyflue worker --auto-resume
  pyflue --project path/to/project worker"""


def seconds(text: str) -> float:
    """A finite number of seconds above 0 (``--lease``, ``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text[:40]}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        "-c",
        type=positive,
        default=4,
        metavar="N",
        help="deliveries in flight at once, one per session (default 4)",
    )
    parser.add_argument(
        "--lease",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how soon another worker takes over an item if this one dies (default 10)",
    )
    parser.add_argument(
        "--auto-resume",
        action="store_true",
        help="also resume interrupted resumable workflow runs of the project (default off)",
    )


def run(args: argparse.Namespace) -> int:
    import anyio

    code: int = anyio.run(_serve, args)
    return code


async def _serve(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    import anyio

    from pyflue.dispatching import Dispatcher
    from pyflue.resuming import Resumer

    from ..core import load_project
    from ..signals import cancel_on_signals

    project = load_project(args.project)
    for error in sorted(project.errors.values(), key=lambda e: e.name):
        if error.kind == "agent":  # its items fail with this error; the other agents are served
            print_error(f"{error.name}: import failed: {error}")
    dispatcher = Dispatcher(project, concurrency=args.concurrency, lease_seconds=args.lease)
    stop = anyio.Event()

    async def request(reason: str) -> bool:
        count = dispatcher.running
        in_flight = f"{count} deliver{'y' if count == 1 else 'ies'}"
        print_note(
            f"stopping ({reason}): no new input is claimed; {in_flight} in flight"
            f" get {dispatcher.grace_period:g} s to finish (Ctrl-C again exits at once)"
        )
        stop.set()
        return True

    with anyio.CancelScope() as scope:
        async with cancel_on_signals(scope, request):
            async with dispatcher, AsyncExitStack() as stack:
                if getattr(args, "auto_resume", False):
                    await stack.enter_async_context(Resumer(project, grace_period=dispatcher.grace_period))
                print(
                    f"pyflue: worker {dispatcher.worker} delivering for {project.path} "
                    f"(concurrency {dispatcher.concurrency}, lease {dispatcher.lease_seconds:g} s"
                    + (", resuming interrupted runs" if getattr(args, "auto_resume", False) else "")
                    + "); Ctrl-C stops it",
                    flush=True,
                )
                await stop.wait()
    return COMPLETED
