"""``pyflue agents`` / ``pyflue workflows``: what the project defines, and what failed to import.

A file that fails to import does not hide the others (the core reports it beside them); here it is
listed on stderr with its path and error, and the command exits 1 so a CI step can check that every
file of a project imports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..arguments import output_flags
from ..exits import COMPLETED, FAILED, print_error
from ..views import choose_mode, print_table

__all__ = ["add_listing_arguments", "run_listing"]


def add_listing_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    output_flags(
        parser, json=f'print one JSON object: {{"{kind}": [{{"name", "description"}}], "errors": [...]}}'
    )


def run_listing(args: argparse.Namespace, kind: str) -> int:
    from ..core import load_project

    project = load_project(args.project)
    table: dict[str, Any] = getattr(project, kind)
    rows = [{"name": name, "description": _description(item)} for name, item in sorted(table.items())]
    singular = kind.rstrip("s")
    errors = {e.name: str(e) for e in project.errors.values() if e.kind == singular}
    mode = choose_mode(args, machine="quiet")
    if mode == "json":
        from ..jsontext import write_json

        write_json({kind: rows, "errors": [{"name": n, "error": e} for n, e in sorted(errors.items())]})
    elif mode == "quiet":
        sys.stdout.write("".join(f"{r['name']}\t{r['description']}\n" for r in rows))
    elif rows:
        print_table(mode, ["name", "description"], [[r["name"], r["description"]] for r in rows])
    else:
        print(f"no {kind}")
    sys.stdout.flush()
    for name, error in sorted(errors.items()):
        print_error(f"{name}: import failed: {error}")
    return FAILED if errors else COMPLETED


def _description(item: Any) -> str:
    text = getattr(item, "description", None) or ""
    return " ".join(str(text).strip().splitlines()[0].split()) if text else ""
