"""``pyflue prompt AGENT INSTANCE MESSAGE``: one turn of a conversation with a project's agent.

The session lives in the project's session store, so the next invocation with the same agent,
instance and ``--session`` continues the conversation. Ctrl-C aborts the operation; the session's
history stays consistent (the core guarantees it) and the next prompt can simply go on.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

from ..arguments import output_flags
from ..exits import COMPLETED, CliError, print_error
from ..views import Mode, choose_mode, event_view, note_offline_model

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "send a message to an agent"
DESCRIPTION = """\
Prompt an agent instance of the project. The conversation is kept in the project's session
store, so the next `pyflue prompt` with the same AGENT, INSTANCE and --session goes on
from where this one ended."""
EXAMPLES = """\
pyflue prompt assistant case-42 "Where is my order?" --session billing
  echo "Summarise our conversation" | pyflue prompt assistant case-42 - --session billing"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT", help="the agent's name (agents/<name>.py)")
    parser.add_argument("instance", metavar="INSTANCE", help="the agent instance's id, e.g. a customer id")
    parser.add_argument("message", metavar="MESSAGE", help="the message, or - to read it from standard input")
    parser.add_argument("--session", "-s", default="default", metavar="ID", help="session id (default)")
    output_flags(
        parser,
        json="print one JSON object: the answer's text, operation_id, usage, ...",
        jsonl="print every event of the prompt as one JSON line, as it happens",
    )


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
    with view if view is not None else nullcontext():
        harness = await init(
            agent, id=args.instance, name=args.agent, on_event=view, session_store=project.session_store
        )
        session = await harness.session(args.session)
        with anyio.CancelScope() as scope:
            async with cancel_on_signals(scope) as interrupts:
                result = await session.prompt(message)
    if result is None:
        print_error(f"interrupted; the prompt to {args.agent} was aborted")
        return interrupts.exit_code
    _output(result, mode, view, args)
    note_offline_model(mode, view)
    return COMPLETED


def _output(result: Any, mode: Mode, view: Any, args: argparse.Namespace) -> None:
    from ..jsontext import write_json

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
