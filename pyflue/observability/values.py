"""Event payload values as span values: times, durations, outcomes, JSON strings, usage and message
parts.

Pure functions shared by every family handler, so each conversion has one definition (a JSON string
on a span is always compact, UTF-8 and total; an error is always named the same way).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .conventions import CACHE_CREATION_TOKENS, CACHE_READ_TOKENS, ERROR_TYPE, INPUT_TOKENS, OUTPUT_TOKENS

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    Attributes = dict[str, AttributeValue]

_CANCELLED = frozenset({"CancelledError", "Cancelled"})  # asyncio's and trio's names


def ns(seconds: float) -> int:
    """Seconds since the epoch as OpenTelemetry's nanoseconds."""
    return int(seconds * 1_000_000_000)


def seconds(data: Mapping[str, Any]) -> float | None:
    """The payload's ``duration_ms`` (a monotonic clock) in seconds, if it has one."""
    value = data.get("duration_ms")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    return None


def call_id(data: Mapping[str, Any]) -> str | None:
    value = data.get("call_id")
    return None if value is None else str(value)


def error_type(error: Any) -> str:
    """``error.type`` of an error payload: its class name, one ``cancelled`` for both backends."""
    if isinstance(error, Mapping) and error.get("type"):
        kind = str(error["type"])
        return "cancelled" if kind in _CANCELLED else kind
    return "_OTHER"


def outcome(status: str, error: Any) -> tuple[str | None, str | None]:
    """``(error.type, status description)`` of an ending; ``(None, None)`` when it succeeded."""
    if status == "completed" and error is None:
        return None, None
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    if status == "cancelled":
        return "cancelled", message or "cancelled"
    if error is None:
        return (status if status != "failed" else "_OTHER"), status
    return error_type(error), message or status


def ended(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """:func:`outcome` of an end event that has an ``error`` but no ``status``."""
    error = data.get("error")
    return outcome("failed" if error is not None else "completed", error)


def with_error(attrs: Attributes, error: str | None) -> Attributes:
    """Metric attributes, plus ``error.type`` when the measured thing failed."""
    return attrs if error is None else {**attrs, ERROR_TYPE: error}


def set_int(out: Attributes, key: str, value: Any) -> None:
    """``out[key] = value`` when ``value`` is an integer (never a bool)."""
    if isinstance(value, int) and not isinstance(value, bool):
        out[key] = value


def usage_attributes(usage: Mapping[str, Any]) -> Attributes:
    out: Attributes = {}
    set_int(out, INPUT_TOKENS, usage.get("input_tokens"))
    set_int(out, OUTPUT_TOKENS, usage.get("output_tokens"))
    # Zero is what an unreporting provider leaves too, so only real cache traffic is recorded.
    if usage.get("cache_read_tokens"):
        set_int(out, CACHE_READ_TOKENS, usage.get("cache_read_tokens"))
    if usage.get("cache_write_tokens"):
        set_int(out, CACHE_CREATION_TOKENS, usage.get("cache_write_tokens"))
    return out


def to_json(value: Any) -> str:
    """The JSON string a span attribute carries: compact, UTF-8, anything unknown as ``str()``."""
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def attribute(value: Any) -> AttributeValue:
    """A scalar as itself, anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    return to_json(value)


def message_parts(value: Any) -> list[dict[str, Any]]:
    """An operation's input as GenAI message parts."""
    if isinstance(value, str):
        return [{"type": "text", "content": value}]
    parts: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            parts.append({"type": "text", "content": item})
        elif isinstance(item, Mapping) and item.get("type") == "text":
            parts.append({"type": "text", "content": str(item.get("text", item.get("content", "")))})
        elif isinstance(item, Mapping):
            parts.append({"type": str(item.get("type") or "unknown"), **{k: v for k, v in item.items()}})
        else:
            parts.append({"type": "text", "content": str(item)})
    return parts
