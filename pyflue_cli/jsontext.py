"""JSON text as the CLI writes it, for scripts and for the previews of the live view.

One encoder for every output: UTF-8 text, pydantic models and datetimes as their JSON form, anything
else as its ``str``. Nothing here imports rich or the core.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

__all__ = ["dumps", "record_fields", "write_json"]


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text (never raises for an unusual object: it becomes a string)."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_default)


def write_json(value: Any, stream: IO[str] | None = None) -> None:
    """``value`` as one line of JSON on ``stream`` (stdout), flushed for a reader that waits."""
    stream = stream or sys.stdout
    stream.write(dumps(value) + "\n")
    stream.flush()


def record_fields(record: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """``keys`` of a stored record (a pydantic model, e.g. a run) as JSON data, in that order;
    datetimes as :meth:`~datetime.datetime.isoformat` writes them, like the events' ``ts``."""
    data = record.model_dump(include=set(keys))
    fields: dict[str, Any] = json.loads(dumps({key: data.get(key) for key in keys}))
    return fields


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
