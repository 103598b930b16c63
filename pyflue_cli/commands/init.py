"""``pyflue init NAME``: write the example project into a new or empty directory.

The template lives in ``pyflue_cli/template`` as ordinary files (linted and tested like the rest of
the code); this command only copies it. It never overwrites: a directory that holds anything is
refused, so ``pyflue init .`` in the wrong place cannot clobber a user's work.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..exits import COMPLETED, CliError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable
    from pathlib import Path

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "create a new example project"
DESCRIPTION = """\
Write a small, commented example project into NAME (a new or empty directory): an agent
with a tool, a reviewer profile it delegates to, and a workflow that uses both. It runs
offline on the `test` model until ANTHROPIC_API_KEY is set."""
EXAMPLES = """\
pyflue init my-project
  pyflue init .                  # the current directory, if empty"""

# Stored without the leading dot so packaging tools never mistake it for the package's own.
_RENAMES = {"gitignore": ".gitignore"}
_SKIP = {"__pycache__", ".pyflue"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="directory to create (or an empty one to fill)")


def run(args: argparse.Namespace) -> int:
    # Imported here: `pyflue --help` imports every command module.
    from importlib.resources import files
    from pathlib import Path

    target = Path(args.name)
    if target.exists() and not target.is_dir():
        raise CliError(f"{args.name!r} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise CliError(f"{args.name!r} is not empty; pyflue init writes only into a new or empty directory")
    name = target.resolve().name
    try:
        target.mkdir(parents=True, exist_ok=True)
        written = _copy(files("pyflue_cli") / "template", target, name)
    except OSError as exc:
        raise CliError(f"cannot write {args.name!r}: {exc.strerror or exc}") from None
    out = sys.stdout
    out.write(f"Created {name}/ ({len(written)} files):\n")
    for path in written:
        out.write(f"  {path}\n")
    cd = "" if target.resolve() == Path.cwd() else f"cd {args.name} && "
    out.write(
        "\nNext:\n"
        f"  {cd}pyflue run summarize --payload @payload.json\n"
        "It runs offline on the `test` model; set ANTHROPIC_API_KEY to use Claude.\n"
    )
    return COMPLETED


def _copy(source: Traversable, target: Path, name: str, prefix: str = "") -> list[str]:
    written: list[str] = []
    for item in sorted(source.iterdir(), key=lambda t: t.name):
        if item.name in _SKIP or item.name.endswith(".pyc"):
            continue
        dest_name = _RENAMES.get(item.name, item.name)
        if item.is_dir():
            (target / dest_name).mkdir(exist_ok=True)
            written += _copy(item, target / dest_name, name, f"{prefix}{dest_name}/")
            continue
        text = item.read_text(encoding="utf-8")
        if item.name == "README.md":
            text = text.replace("{{name}}", name)
        (target / dest_name).write_text(text, encoding="utf-8")
        written.append(prefix + dest_name)
    return written
