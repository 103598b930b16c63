"""Typed messages and parts: the conversation as PyFlue persists it and sends it to providers.

Messages are slotted dataclasses (a retained conversation costs bytes, not kilobytes) that
pydantic validates and serialises through :func:`messages_adapter`, so they round-trip through JSON
unchanged: the stores persist them and the HTTP adapter sends them over the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import ConfigDict, Field, TypeAdapter

__all__ = [
    "AssistantMessage",
    "AssistantPart",
    "ImagePart",
    "Message",
    "TextPart",
    "ThinkingPart",
    "ToolCallPart",
    "ToolResultPart",
    "UserMessage",
    "UserPart",
    "messages_adapter",
    "messages_from_json",
    "messages_to_json",
    "parts_from_json",
    "parts_to_json",
    "text_of",
    "user_parts",
]


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image, inline (``data`` bytes, base64 in JSON) or by ``url``."""

    mime_type: str = "image/png"
    data: bytes | None = None
    url: str | None = None
    type: Literal["image"] = "image"
    __pydantic_config__ = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


@dataclass(slots=True)
class ThinkingPart:
    """Model reasoning. ``signature`` (Anthropic) must be sent back unchanged with the history;
    ``redacted`` holds an encrypted ``redacted_thinking`` block's data."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None
    type: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class ToolCallPart:
    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResultPart:
    """The result of one tool call. ``content`` is text (JSON text for structured results)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


UserPart: TypeAlias = Annotated[TextPart | ImagePart | ToolResultPart, Field(discriminator="type")]
AssistantPart: TypeAlias = Annotated[TextPart | ThinkingPart | ToolCallPart, Field(discriminator="type")]


@dataclass(slots=True)
class UserMessage:
    """Input to the model: the user's text and images, or the results of the last turn's tools."""

    parts: list[UserPart]
    role: Literal["user"] = "user"


@dataclass(slots=True)
class AssistantMessage:
    """One model response as kept in history."""

    parts: list[AssistantPart]
    role: Literal["assistant"] = "assistant"


Message: TypeAlias = Annotated[UserMessage | AssistantMessage, Field(discriminator="role")]


@cache
def messages_adapter() -> TypeAdapter[list[Message]]:
    """The JSON form of a history (built on first use: building it costs milliseconds at import)."""
    return TypeAdapter(list[Message])


def messages_to_json(messages: list[UserMessage | AssistantMessage]) -> bytes:
    return messages_adapter().dump_json(messages, exclude_none=True)


def messages_from_json(data: str | bytes) -> list[UserMessage | AssistantMessage]:
    return messages_adapter().validate_json(data)


def text_of(message: UserMessage | AssistantMessage) -> str:
    """The concatenated text parts of a message."""
    return "".join(p.text for p in message.parts if isinstance(p, TextPart))


@cache
def _part_adapter() -> TypeAdapter[TextPart | ImagePart | ToolResultPart]:
    return TypeAdapter(UserPart)


def parts_to_json(parts: list[TextPart | ImagePart | ToolResultPart]) -> list[dict[str, Any]]:
    """Input parts as JSON data (image bytes as base64), for queues that keep input for later."""
    adapter = _part_adapter()
    return [json.loads(adapter.dump_json(part, exclude_none=True)) for part in parts]


def parts_from_json(data: list[dict[str, Any]]) -> list[TextPart | ImagePart | ToolResultPart]:
    """The parts :func:`parts_to_json` made."""
    adapter = _part_adapter()
    return [adapter.validate_json(json.dumps(item)) for item in data]


def user_parts(value: str | list[Any]) -> list[TextPart | ImagePart | ToolResultPart]:
    """Prompt input as parts: a string, or a list of parts / part dicts
    (``{"type": "text", "text": ...}``, ``{"type": "image", "data": b"...", "mime_type": ...}``)."""
    from ..errors import ConfigError

    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list) or not value:
        raise ConfigError("prompt input must be a string or a non-empty list of text/image parts")
    parts: list[TextPart | ImagePart | ToolResultPart] = []
    for item in value:
        if isinstance(item, TextPart | ImagePart):
            parts.append(item)
            continue
        if isinstance(item, str):
            parts.append(TextPart(item))
            continue
        try:
            parts.append(_part_adapter().validate_python(item))
        except Exception as exc:
            raise ConfigError(f"invalid prompt part {_short(item)}: {_first_error(exc)}") from None
    for part in parts:
        if isinstance(part, ImagePart) and not part.data and not part.url:
            # Stored, such a part would break every later request of the session.
            raise ConfigError("an image part needs its bytes (data=...) or a url=...; it has neither")
    return parts


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return f"{loc}: {first.get('msg')}" if loc else str(first.get("msg"))
    return str(exc)


def dumps(value: Any) -> str:
    """Compact JSON text for tool results and arguments."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
