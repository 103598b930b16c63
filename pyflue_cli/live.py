"""The live view on a terminal: a spinner line for everything in progress, text as it streams, one
line per tool call with its duration, nested subagent tasks, compaction notices and a final summary;
and the tables of ``runs``, ``agents`` and ``workflows``.

rich is imported here only, and this module only when stdout is a terminal, so scripted use never
loads it. Lines that are done are printed above the live region and stay in the scrollback; the
live region (the text still streaming, then one spinner line per model call, tool call, task or
compaction still running, each removed when it ends) is redrawn in place and disappears at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .format import Activity, EventFormatter, Line, format_duration
from .jsontext import dumps

__all__ = ["LiveView", "print_table"]

_STYLES = {
    "header": "bold",
    "operation": "cyan",
    "text": "",
    "tool": "green",
    "tool.error": "red",
    "task": "magenta",
    "notice": "yellow",
    "log": "blue",
    "log.warning": "yellow",
    "log.error": "bold red",
    "error": "bold red",
    "dim": "dim",
    "traceback": "dim",
    "summary.ok": "bold green",
    "summary.fail": "bold red",
}


class LiveView:
    """An event observer that draws the run on ``console``. Use it as a context manager: entering
    starts the spinner (when ``spinner``), leaving stops it and prints what is still buffered."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        spinner: bool = True,
        show_header: bool = True,
        show_run_error: bool = True,
    ) -> None:
        self.console = console or Console(file=sys.stdout, highlight=False)
        self.formatter = EventFormatter(show_header=show_header, show_run_error=show_run_error)
        self._spinner = Spinner("dots", style="cyan")
        self._live: Live | None = None
        if spinner and self.console.is_terminal:
            self._live = Live(
                get_renderable=self._region,
                console=self.console,
                transient=True,
                refresh_per_second=12.5,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> LiveView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._print(self.formatter.flush())

    def __call__(self, event: Any) -> None:
        self._print(self.formatter.feed(event))

    def print_result(self, result: Any) -> None:
        text = dumps(result, indent=2)
        self.console.print(JSON(text) if not isinstance(result, str) else Text(text))

    def print_summary(self) -> None:
        if self.formatter.summary is not None:
            self._print([self.formatter.summary.line()])

    def print_line(self, line: Line) -> None:
        self._print([line])

    def _print(self, lines: list[Line]) -> None:
        if lines and self._live is not None:
            self._live.refresh()  # the region redrawn under these lines must be current, not 80 ms old
        for line in lines:
            if line.style in ("text", "traceback"):  # these wrap; status lines stay one line each
                self.console.print(_text(line), overflow="fold")
            else:
                self.console.print(_text(line), no_wrap=True, overflow="ellipsis")

    def _region(self) -> RenderableType:
        """The part redrawn in place: text still streaming, then one spinner line per activity."""
        now = time.monotonic()
        frame = self._spinner.render(now)
        lines = [_text(line) for line in self.formatter.pending()]
        for activity in self.formatter.running() or [Activity("working", now)]:
            line = Text("  " * activity.depth)
            line.append_text(frame if isinstance(frame, Text) else Text("•"))
            took = format_duration((now - activity.started) * 1000)
            line.append(f" {activity.label}  {took}", style="dim")
            lines.append(line)
        return Group(*lines)


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """``rows`` as a rich table on stdout: the first column (the name or id) in cyan, a ``status``
    column coloured by value, the last column folded into the width that is left."""
    console = Console(highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(header):
        last = index == len(header) - 1
        table.add_column(
            column,
            style="cyan" if index == 0 else None,
            no_wrap=not last,
            min_width=len(column),
            overflow="fold" if last else "ellipsis",
            ratio=1 if last else None,
        )
    status = header.index("status") if "status" in header else None
    for row in rows:
        cells: list[Text | str] = list(row)
        if status is not None:
            cells[status] = Text(row[status], style=_STATUS_COLOURS.get(row[status], "cyan"))
        table.add_row(*cells)
    console.print(table)


_STATUS_COLOURS = {"completed": "green", "failed": "red", "cancelled": "yellow", "interrupted": "yellow"}


def _text(line: Line) -> Text:
    text = Text("  " * line.depth)
    text.append(line.text, style=_STYLES.get(line.style, ""))
    return text
