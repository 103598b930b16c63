"""``pyflue runs``: the runs recorded in the project's store, newest first, a page at a time.

Reads the store only, so it works from another terminal while runs are live (SQLite in WAL mode
lets readers and the running process proceed together). A listing leaves each error's traceback
out (``pyflue logs RUN_ID`` shows it), so a page stays small.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..arguments import output_flags, positive
from ..exits import COMPLETED
from ..views import choose_mode, print_table

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "list recorded runs"
DESCRIPTION = "List the runs recorded in the project's run store, newest first."
EXAMPLES = """\
pyflue runs
  pyflue runs --workflow summarize --status failed --limit 20
  pyflue runs --cursor <next cursor printed by the previous page>
  pyflue runs --json"""

_STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")
_ROW_KEYS = ("run_id", "workflow", "status", "started_at", "ended_at", "duration_ms", "usage", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", "-w", metavar="NAME", help="only runs of this workflow")
    parser.add_argument(
        "--status",
        "-s",
        choices=_STATUSES,
        metavar="STATUS",
        help=f"only runs with this status: {', '.join(_STATUSES)}",
    )
    parser.add_argument("--limit", "-n", type=positive, default=20, metavar="N", help="at most N runs (20)")
    parser.add_argument("--cursor", metavar="CURSOR", help="the page after this cursor")
    output_flags(
        parser,
        json='print one JSON object: {"runs": [...], "next_cursor": ...}',
        jsonl="print one run per line as JSON (the default when stdout is not a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    import anyio

    mode = choose_mode(args, machine="jsonl")
    page = anyio.run(_page, args)
    rows = [_row(record) for record in page.runs]
    if mode == "json":
        from ..jsontext import write_json

        write_json({"runs": rows, "next_cursor": page.next_cursor})
    elif mode == "jsonl":
        from ..jsontext import dumps

        sys.stdout.write("".join(dumps(row) + "\n" for row in rows))
    else:
        _table(mode, rows, page.next_cursor, args)
    return COMPLETED


async def _page(args: argparse.Namespace) -> Any:
    from pyflue.runs import list_runs

    from ..core import project_dir

    project = project_dir(args.project)
    return await list_runs(
        workflow=args.workflow, status=args.status, limit=args.limit, cursor=args.cursor, project=project
    )


def _row(record: Any) -> dict[str, Any]:
    from ..jsontext import record_fields

    row = record_fields(record, _ROW_KEYS)
    if row["error"]:
        row["error"] = {k: v for k, v in row["error"].items() if k != "traceback"}
    return row


def _table(mode: Any, rows: list[dict[str, Any]], next_cursor: str | None, args: argparse.Namespace) -> None:
    from ..format import format_duration

    if not rows:
        print("no runs" + (" match" if args.workflow or args.status or args.cursor else " yet"))
        return
    cells = []
    for row in rows:
        usage = row["usage"] or {}
        tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
        error = row["error"] or {}
        cells.append(
            [
                row["run_id"],
                row["status"],
                (row["started_at"] or "")[5:19].replace("T", " "),
                format_duration(row["duration_ms"]),
                f"{tokens:,}" if tokens else "",
                f"{error.get('type', '')}: {error.get('message', '')}" if error else "",
            ]
        )
    print_table(mode, ["run id", "status", "started", "duration", "tokens", "error"], cells)
    if next_cursor:
        print(f"more: pyflue runs --cursor {next_cursor}")
