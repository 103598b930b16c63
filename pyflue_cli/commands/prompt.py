"""``pyflue prompt AGENT INSTANCE MESSAGE``: one turn of a conversation with a project's agent.

The session lives in the project's session store, so the next invocation with the same agent,
instance and ``--session`` continues the conversation. Ctrl-C aborts the operation; the session's
history stays consistent (the core guarantees it) and the next prompt can simply go on.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exits import COMPLETED, CliError
from ..views import Mode, choose_mode, event_view

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    message = sys.stdin.read() if args.message == "-" else args.message
    if not message.strip():
        raise CliError("the message is empty")
    mode = choose_mode(args, machine="quiet")
    import anyio

    code: int = anyio.run(_prompt, args, message, mode)
    return code


async def _prompt(args: argparse.Namespace, message: str, mode: Mode) -> int:
    import anyio

    from pyflue import init

    from ..core import load_project, lookup
    from ..signals import cancel_on_signals

    project = load_project(args.project)
    agent = lookup(project, "agent", args.agent)
    view = event_view(mode, show_header=False)
    result: Any = None
    with view if view is not None else _null():
        harness = await init(
            agent, id=args.instance, name=args.agent, on_event=view, session_store=project.session_store
        )
        session = await harness.session(args.session)
        with anyio.CancelScope() as scope:
            async with cancel_on_signals(scope) as interrupts:
                result = await session.prompt(message)
    if result is None:
        print(f"pyflue: interrupted; the prompt to {args.agent} was aborted", file=sys.stderr)
        return interrupts.exit_code
    _output(result, mode, view, args)
    return COMPLETED


def _output(result: Any, mode: Mode, view: Any, args: argparse.Namespace) -> None:
    from ..output import write_json

    if mode == "json":
        write_json(
            {
                "agent": args.agent,
                "instance_id": args.instance,
                "session_id": args.session,
                "operation_id": result.operation_id,
                "text": result.text,
                "finish_reason": result.finish_reason,
                "usage": result.usage.to_dict(),
            }
        )
    elif mode == "quiet":
        sys.stdout.write(result.text + ("" if result.text.endswith("\n") else "\n"))
    elif mode in ("live", "plain"):
        from ..format import Summary

        end = view.formatter.last_operation_end or {}
        view.formatter.summary = Summary(
            status=end.get("status", "completed"),
            duration_ms=end.get("duration_ms"),
            usage=result.usage.to_dict(),
            models=view.formatter.models,
        )
        view.print_summary()
    sys.stdout.flush()


def _null() -> Any:
    from contextlib import nullcontext

    return nullcontext()
