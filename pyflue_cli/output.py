"""Plain output: JSON for scripts, and the plain-text view for logs that are not a terminal.

Nothing here imports rich or the core: a script piping ``pyflue run ... --json`` into ``jq`` pays
only for what it reads.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from .format import EventFormatter, Line

__all__ = ["JsonlWriter", "PlainView", "dumps", "silence_stdout", "write_json"]


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON as a script expects it: UTF-8 text, anything unusual (datetimes) as a string."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_default)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_json(value: Any, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(dumps(value) + "\n")
    stream.flush()


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


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader left, so Python's exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
