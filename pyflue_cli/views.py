"""Which output a command produces: a live view for a person, JSON for a program.

The rule is the same for every command: ``--json`` and ``--jsonl`` always win; otherwise a terminal
gets the live view (rich) and anything else gets machine-readable output, so
``pyflue run x > out.json`` and ``pyflue logs id | jq`` just work. ``--stream`` asks for the
human-readable lines even without a terminal (plain text, e.g. in a CI log).

rich comes with the ``cli`` extra. Without it a terminal gets the same lines as plain text (no
colours, no spinner) and one note on stderr saying how to get the live view: the command still
does what was asked.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Literal

from .exits import print_note

__all__ = ["Mode", "choose_mode", "event_view", "is_terminal", "note_offline_model", "print_table"]

Mode = Literal["live", "plain", "json", "jsonl", "quiet"]

_NO_RICH_NOTE = "plain output: rich is not installed; pip install 'pyflue[cli]' for the live view"
_OFFLINE_NOTE = (
    "this ran on the built-in test model (offline, canned answers); to use a real model, "
    "export ANTHROPIC_API_KEY or set PYFLUE_MODEL=provider/model"
)


def choose_mode(args: argparse.Namespace, *, machine: Mode = "quiet") -> Mode:
    """``machine`` is the default when stdout is not a terminal (``quiet``: only the result)."""
    if getattr(args, "json", False):
        return "json"
    if getattr(args, "jsonl", False):
        return "jsonl"
    if is_terminal():
        if _has_rich():
            return "live"
        print_note(_NO_RICH_NOTE)
        return "plain"
    if getattr(args, "stream", False):
        return "plain"
    return machine


def is_terminal() -> bool:
    """Whether stdout is a terminal (a person reads it)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def event_view(
    mode: Mode, *, spinner: bool = True, show_header: bool = True, show_run_error: bool = True
) -> Any:
    """The event observer for ``mode`` (a context manager), or ``None`` when events are not shown."""
    if mode == "live":
        from .live import LiveView

        return LiveView(spinner=spinner, show_header=show_header, show_run_error=show_run_error)
    if mode == "plain":
        from .output import PlainView

        return PlainView(show_header=show_header, show_run_error=show_run_error)
    if mode == "jsonl":
        from .output import JsonlWriter

        return JsonlWriter()
    return None


def print_table(mode: Mode, header: list[str], rows: list[list[str]]) -> None:
    """A table for a person: rich's on a live terminal, aligned plain columns otherwise. The last
    column takes what width is left (it folds on a terminal)."""
    if mode == "live":
        from .live import print_table as rich_table

        rich_table(header, rows)
    else:
        from .output import plain_table

        sys.stdout.write(plain_table(header, rows))


def note_offline_model(mode: Mode, view: Any) -> None:
    """Once, on stderr, for a person at a terminal: the answers came from the built-in test model
    because the project chose it (``PYFLUE_MODEL`` unset: nobody asked for it on the command line),
    and how to use a real model. A script (stdout not a terminal, ``--json``) never sees it."""
    if mode not in ("live", "plain") or not is_terminal() or os.environ.get("PYFLUE_MODEL"):
        return
    if "test" in view.formatter.providers:
        print_note(_OFFLINE_NOTE)
