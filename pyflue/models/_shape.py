"""Reading provider JSON whose shape nothing guarantees.

A provider (or a proxy, or a compatible server with its own ideas) can answer valid JSON of the wrong
shape. The readers here check each value they hand on and raise :class:`WrongShape` naming the field
(``choices[0].delta.tool_calls``) and what was there instead; each provider turns it into its own typed
error. ``None`` reads as absent everywhere, as the APIs send ``null`` for fields they leave out.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["WrongShape", "count", "items", "obj", "text"]


class WrongShape(Exception):
    """``where`` holds something other than ``expected``."""

    def __init__(self, where: str, value: Any, expected: str) -> None:
        shown = json.dumps(value, default=repr)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{where} should be {expected}, got {shown}")
        self.where = where


def obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object (``{}`` when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WrongShape(where, value, "an object")
    return value


def items(value: Any, where: str) -> list[Any]:
    """A JSON array (``[]`` when absent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise WrongShape(where, value, "an array")
    return value


def text(value: Any, where: str) -> str | None:
    """A string, or ``None`` when absent."""
    if value is None or isinstance(value, str):
        return value
    raise WrongShape(where, value, "a string")


def count(value: Any, where: str) -> int:
    """A token count: a non-negative integer (``0`` when absent)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WrongShape(where, value, "a non-negative integer")
    return value
