"""The CLI's one seam with the core: finding the project, loading it, looking names up in it.

Every command reaches :mod:`pyflue` through here or through the core's public functions, imported
lazily so ``--help`` never pays for them. Nothing is decided here: the core finds the project's
files, validates names and reports import errors; this module only turns a lookup that fails
*before anything ran* into a usage error (exit 2) with the core's own message.

A *project* is a directory holding ``agents/`` or ``workflows/`` (at its top, or under ``src/``,
where the core also looks for them) or a ``.pyflue/`` store. Commands look in ``--project PATH``,
else the current directory, and nowhere else: a directory that is none of these is refused with
where it looked, instead of showing an empty project.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exits import CliError, one_line

if TYPE_CHECKING:
    from pyflue.project import Project

__all__ = ["load_project", "lookup", "project_dir"]

_MARKERS = ("agents", "workflows", "src/agents", "src/workflows", ".pyflue")
_PATH_CHARS = 200  # a path longer than this is shown by its end, which says the most


def project_dir(path: str | None) -> Path:
    """The project directory, for commands that only read its store (``runs``, ``logs``): they
    never import the project's code, so they work even while a file of it is broken."""
    given = Path(path) if path else Path.cwd()
    if not given.is_dir():
        raise CliError(f"project directory {_shown(given)!r} does not exist (see --project)")
    root = given.resolve()
    if not any((root / marker).is_dir() for marker in _MARKERS):
        where = "--project" if path else "the current directory"
        raise CliError(
            f"no PyFlue project in {_shown(root)} ({where}): a project is a directory with agents/ "
            "or workflows/ (or a .pyflue/ store); pass --project PATH, or create one with pyflue init NAME"
        )
    return root


def load_project(path: str | None) -> Project:
    """The project at ``path`` (default: the current directory)."""
    root = project_dir(path)
    from pyflue.project import Project

    return Project.load(root)


def lookup(project: Project, kind: str, name: str) -> Any:
    """``project.agent(name)`` / ``project.workflow(name)``; an unknown name or a file that failed
    to import becomes one line and exit 2 (the core's message lists the names that exist)."""
    from pyflue.errors import PyFlueError

    try:
        return getattr(project, kind)(name)
    except PyFlueError as exc:
        raise CliError(one_line(exc)) from exc


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= _PATH_CHARS else "…" + text[-(_PATH_CHARS - 1) :]
