"""``pyflue runs``: the runs recorded in the project's store, newest first, a page at a time.

Reads the store only, so it works from another terminal while runs are live (SQLite in WAL mode
lets readers and the running process proceed together).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exits import COMPLETED
from ..views import choose_mode

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    import anyio

    mode = choose_mode(args, machine="jsonl")
    page = anyio.run(_page, args)
    rows = [_row(record) for record in page.runs]
    if mode == "json":
        from ..output import write_json

        write_json({"runs": rows, "next_cursor": page.next_cursor})
    elif mode == "jsonl":
        from ..output import dumps

        sys.stdout.write("".join(dumps(row) + "\n" for row in rows))
    else:
        _table(rows, page.next_cursor, args)
    return COMPLETED


async def _page(args: argparse.Namespace) -> Any:
    from pyflue.runs import list_runs

    from ..core import project_dir

    project = project_dir(args.project)
    return await list_runs(
        workflow=args.workflow, status=args.status, limit=args.limit, cursor=args.cursor, project=project
    )


def _row(record: Any) -> dict[str, Any]:
    usage = record.usage.to_dict() if hasattr(record.usage, "to_dict") else record.usage
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "duration_ms": record.duration_ms,
        "usage": usage,
        "error": record.error,
    }


def _table(rows: list[dict[str, Any]], next_cursor: str | None, args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..format import format_duration

    console = Console(highlight=False)
    if not rows:
        console.print("no runs" + (" match" if args.workflow or args.status or args.cursor else " yet"))
        return
    colours = {"completed": "green", "failed": "red", "cancelled": "yellow", "interrupted": "yellow"}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("run id", "status", "started", "duration", "tokens"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column("error", overflow="fold", ratio=1)
    for row in rows:
        usage = row["usage"] or {}
        tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
        error = row["error"] or {}
        table.add_row(
            row["run_id"],
            f"[{colours.get(row['status'], 'cyan')}]{row['status']}[/]",
            (row["started_at"] or "")[5:19].replace("T", " "),
            format_duration(row["duration_ms"]),
            f"{tokens:,}" if tokens else "",
            f"{error.get('type', '')}: {error.get('message', '')}" if error else "",
        )
    console.print(table)
    if next_cursor:
        console.print(f"[dim]more: pyflue runs --cursor {next_cursor}[/]")
