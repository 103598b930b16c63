"""Output without rich: JSON lines of events for scripts, and the plain-text view and tables for a
log that is not a terminal (or a terminal without the ``cli`` extra).

Nothing here imports rich or the core: a script piping ``pyflue run ... --jsonl`` into ``jq`` pays
only for what it reads.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from .format import EventFormatter, Line
from .jsontext import dumps

__all__ = ["JsonlWriter", "PlainView", "plain_table", "silence_stdout"]


class JsonlWriter:
    """An event observer writing each event as one JSON line, flushed at once so that a reader
    (``| jq``, a test, another tool) sees it while the run goes on."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.closed = False

    def __call__(self, event: Any) -> None:
        if self.closed:
            return
        try:
            self.stream.write(event.model_dump_json() + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # `pyflue run x --jsonl | head`: the reader is gone, the run is not; it goes on, recorded.
            self.closed = True
            silence_stdout()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class PlainView:
    """The live view's lines as plain text (no colour, no spinner), for ``--stream`` into a file
    or a CI log, and for ``pyflue logs`` when stdout is not a terminal but a person reads it."""

    def __init__(
        self, stream: IO[str] | None = None, *, show_header: bool = True, show_run_error: bool = True
    ) -> None:
        self.stream = stream or sys.stdout
        self.formatter = EventFormatter(show_header=show_header, show_run_error=show_run_error)

    def __call__(self, event: Any) -> None:
        self._write(self.formatter.feed(event))

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._write(self.formatter.flush())

    def print_result(self, result: Any) -> None:
        self.stream.write(dumps(result, indent=2) + "\n")

    def print_summary(self) -> None:
        if self.formatter.summary is not None:
            self._write([self.formatter.summary.line()])

    def print_line(self, line: Line) -> None:
        self._write([line])

    def _write(self, lines: list[Line]) -> None:
        if lines:
            self.stream.write("".join("  " * line.depth + line.text + "\n" for line in lines))
            self.stream.flush()


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` under ``header`` in aligned columns, two spaces apart (the last one unpadded)."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        + "\n"
        for row in table
    )


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader left, so Python's exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
