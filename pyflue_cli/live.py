"""The live view on a terminal: a spinner while something runs, text as it streams, one line per
tool call with its duration, nested subagent tasks, compaction notices and a final summary.

rich is imported here only, and this module only when stdout is a terminal, so scripted use never
loads it. Lines that are done are printed above the live region and stay in the scrollback; the
live region (the text still streaming and the spinner) is redrawn in place and disappears at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.live import Live
from rich.padding import Padding
from rich.spinner import Spinner
from rich.text import Text

from .format import EventFormatter, Line, format_duration
from .output import dumps

__all__ = ["LiveView"]

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
            if line.style == "text":  # what the model said wraps; status lines stay one line each
                self.console.print(_text(line), overflow="fold")
            else:
                self.console.print(_text(line), no_wrap=True, overflow="ellipsis")

    def _region(self) -> RenderableType:
        """The part redrawn in place: text still streaming, then the spinner and what it waits on."""
        pending = [_text(line) for line in self.formatter.pending()]
        activity = self.formatter.activity
        if activity is not None:
            label = f"{activity.label}  {format_duration((time.monotonic() - activity.started) * 1000)}"
            depth = activity.depth
        else:
            label, depth = "working", 0
        self._spinner.text = Text(label, style="dim")
        return Group(*pending, Padding(self._spinner, (0, 0, 0, 2 * depth)))


def _text(line: Line) -> Text:
    text = Text("  " * line.depth)
    text.append(line.text, style=_STYLES.get(line.style, ""))
    return text
