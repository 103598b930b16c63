"""``pyflue dispatches``: the dispatched input in the project's store, newest first, a page at a time.

Reads the store only (no project code is imported), so it works from another terminal while a
worker delivers, and while a file of the project is broken. A listing leaves each item's input
out (it can be large: images); the outcome is there in full.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..arguments import output_flags, positive
from ..exits import COMPLETED
from ..views import choose_mode, print_table

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "list dispatched input and its outcome"
DESCRIPTION = "List the input dispatched to the project's agents, newest first, with status and outcome."
EXAMPLES = """\
pyflue dispatches
  pyflue dispatches --status failed --agent assistant
  pyflue dispatches --id case-42 --session billing --limit 5 --json
  pyflue dispatches --cursor <next cursor printed by the previous page>"""

_STATUSES = ("queued", "running", "delivered", "failed", "cancelled")
_ROW_KEYS = (
    "dispatch_id",
    "agent",
    "instance_id",
    "session_id",
    "key",
    "status",
    "attempts",
    "max_attempts",
    "worker",
    "accepted_at",
    "updated_at",
    "cancel_requested",
    "outcome",
)
_PREVIEW = 80  # characters of an outcome shown in a table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        choices=_STATUSES,
        metavar="STATUS",
        help=f"only dispatches with this status: {', '.join(_STATUSES)}",
    )
    parser.add_argument("--agent", metavar="NAME", help="only dispatches to this agent")
    parser.add_argument("--id", metavar="INSTANCE", help="only dispatches to this agent instance")
    parser.add_argument("--session", metavar="ID", help="only dispatches to this session")
    parser.add_argument("--limit", "-n", type=positive, default=20, metavar="N", help="at most N (20)")
    parser.add_argument("--cursor", metavar="CURSOR", help="the page after this cursor")
    output_flags(
        parser,
        json='print one JSON object: {"dispatches": [...], "next_cursor": ...}',
        jsonl="print one dispatch per line as JSON (the default when stdout is not a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    import anyio

    mode = choose_mode(args, machine="jsonl")
    page = anyio.run(_page, args)
    from ..jsontext import record_fields

    rows = [record_fields(record, _ROW_KEYS) for record in page.dispatches]
    if mode == "json":
        from ..jsontext import write_json

        write_json({"dispatches": rows, "next_cursor": page.next_cursor})
    elif mode == "jsonl":
        from ..jsontext import dumps

        sys.stdout.write("".join(dumps(row) + "\n" for row in rows))
    else:
        _table(mode, rows, page.next_cursor, args)
    return COMPLETED


async def _page(args: argparse.Namespace) -> Any:
    from pyflue.dispatching import list_dispatches

    from ..core import project_dir

    return await list_dispatches(
        agent=args.agent,
        id=args.id,
        session=args.session,
        status=args.status,
        limit=args.limit,
        cursor=args.cursor,
        project=project_dir(args.project),
    )


def _table(mode: Any, rows: list[dict[str, Any]], next_cursor: str | None, args: argparse.Namespace) -> None:
    filtered = args.status or args.agent or args.id or args.session or args.cursor
    if not rows:
        print("no dispatches" + (" match" if filtered else " yet"))
        return
    cells = [
        [
            row["dispatch_id"],
            f"{row['agent']} / {row['instance_id']} / {row['session_id']}",
            row["status"],
            str(row["attempts"]),
            (row["accepted_at"] or "")[5:19].replace("T", " "),
            _outcome(row),
        ]
        for row in rows
    ]
    header = ["dispatch id", "agent / instance / session", "status", "tries", "accepted", "outcome"]
    print_table(mode, header, cells)
    if next_cursor:
        print(f"more: pyflue dispatches --cursor {next_cursor}")


def _outcome(row: dict[str, Any]) -> str:
    """The answer's first words, the error, or why it was cancelled."""
    outcome = row["outcome"] or {}
    error = outcome.get("error")
    if error:
        text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    elif outcome.get("text"):
        text = str(outcome["text"])
    else:
        text = row["cancel_requested"] or ""
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"
