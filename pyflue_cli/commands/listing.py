"""``pyflue agents`` / ``pyflue workflows``: what the project defines, and what failed to import.

A file that fails to import does not hide the others (the core reports it beside them); here it is
listed on stderr with its path and error, and the command exits 1 so a CI step can check that every
file of a project imports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..exits import COMPLETED, FAILED
from ..views import choose_mode

__all__ = ["run_listing"]


def run_listing(args: argparse.Namespace, kind: str) -> int:
    from ..core import load_project

    project = load_project(args.project)
    table: dict[str, Any] = getattr(project, kind)
    rows = [{"name": name, "description": _description(item)} for name, item in sorted(table.items())]
    singular = kind.rstrip("s")
    errors = {e.name: str(e) for e in project.errors.values() if e.kind == singular}
    mode = choose_mode(args, machine="quiet")
    if mode == "json":
        from ..output import write_json

        write_json({kind: rows, "errors": [{"name": n, "error": e} for n, e in sorted(errors.items())]})
    elif mode == "live":
        _table(rows, kind)
    else:
        sys.stdout.write("".join(f"{r['name']}\t{r['description']}\n" for r in rows))
    for name, error in sorted(errors.items()):
        print(f"pyflue: {name}: import failed: {error}", file=sys.stderr)
    return FAILED if errors else COMPLETED


def _description(item: Any) -> str:
    text = getattr(item, "description", None) or ""
    return " ".join(str(text).strip().splitlines()[0].split()) if text else ""


def _table(rows: list[dict[str, Any]], kind: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not rows:
        console.print(f"no {kind}")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("description", overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["description"])
    console.print(table)
