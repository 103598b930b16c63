"""Argument helpers shared by the commands' ``add_arguments``: the output flags and number types.

Only argparse is imported here: every command module is imported to build ``pyflue --help``.
"""

from __future__ import annotations

import argparse

__all__ = ["output_flags", "positive"]


def output_flags(
    parser: argparse.ArgumentParser, *, json: str, jsonl: str | None = None, stream: str | None = None
) -> None:
    """``--json`` (and ``--jsonl``, ``--stream`` when described), mutually exclusive: each help text
    says what *this* command prints with it."""
    group = parser.add_mutually_exclusive_group()
    if stream is not None:
        group.add_argument("--stream", action="store_true", help=stream)
    group.add_argument("--json", action="store_true", help=json)
    if jsonl is not None:
        group.add_argument("--jsonl", action="store_true", help=jsonl)


def positive(text: str) -> int:
    """A whole number of at least 1 (``--limit``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
