"""Which output a command produces: a live view for a person, JSON for a program.

The rule is the same for every command that shows events: ``--json`` and ``--jsonl`` always win;
otherwise a terminal gets the live view (rich) and anything else gets machine-readable output, so
``pyflue run x > out.json`` and ``pyflue logs id | jq`` just work. ``--stream`` asks for the
human-readable lines even without a terminal (plain text, e.g. in a CI log).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Literal

__all__ = ["Mode", "choose_mode", "event_view"]

Mode = Literal["live", "plain", "json", "jsonl", "quiet"]


def choose_mode(args: argparse.Namespace, *, machine: Mode = "quiet") -> Mode:
    """``machine`` is the default when stdout is not a terminal (``quiet``: only the result)."""
    if getattr(args, "json", False):
        return "json"
    if getattr(args, "jsonl", False):
        return "jsonl"
    if _is_terminal():
        return "live"
    if getattr(args, "stream", False):
        return "plain"
    return machine


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


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
