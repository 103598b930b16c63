"""The WebSocket protocol, version 1 (TypeScript Flue <= 0.10's, in snake_case): what a client may
send, how a frame becomes one of those messages or a typed error, and what the server sends back.

Client messages: ``prompt`` (agent sockets), ``invoke`` (workflow sockets), ``abort``, ``ping``;
``version: 1`` is optional on each. Server messages: ``ready``, ``started``, ``event``, ``result``,
``error``, ``pong``. Every message is one JSON object in one text frame (a binary frame holding
UTF-8 JSON is read the same way). Parsing never raises anything but :class:`ProtocolError`, whose
``error`` is the ``{type, message, details?}`` the client gets.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import to_json

from ..schemas import ID_PATTERN, MAX_ID

__all__ = [
    "MULTITASK",
    "VERSION",
    "AbortMessage",
    "ClientMessage",
    "InvokeMessage",
    "PingMessage",
    "PromptMessage",
    "ProtocolError",
    "Target",
    "encode",
    "error_message",
    "event_message",
    "parse",
    "result_message",
    "started_message",
]

VERSION = 1
MULTITASK = ("enqueue", "reject", "interrupt")
#: What a socket talks to; it decides which request type the socket takes.
Target = Literal["agent", "workflow"]
_MAX_DETAILS = 20
_MAX_TEXT = 200


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] | None = None


class _Request(_Message):
    request_id: str = Field(min_length=1, max_length=MAX_ID)


class PromptMessage(_Request):
    """``{type: "prompt", request_id, message, session?, multitask?}``: prompt the socket's instance."""

    type: Literal["prompt"]
    message: str | list[dict[str, Any]]
    session: str = Field("default", min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    multitask: Literal["enqueue", "reject", "interrupt"] = "enqueue"

    @field_validator("session")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text")
        return value


class InvokeMessage(_Request):
    """``{type: "invoke", request_id, payload}``: start a run of the socket's workflow."""

    type: Literal["invoke"]
    payload: Any = None


class AbortMessage(_Request):
    """``{type: "abort", request_id}``: abort that request of this socket."""

    type: Literal["abort"]


class PingMessage(_Message):
    type: Literal["ping"]


ClientMessage = PromptMessage | InvokeMessage | AbortMessage | PingMessage

_MODELS: dict[str, type[BaseModel]] = {
    "prompt": PromptMessage,
    "invoke": InvokeMessage,
    "abort": AbortMessage,
    "ping": PingMessage,
}
_REQUESTS = {"agent": "prompt", "workflow": "invoke"}


class ProtocolError(Exception):
    """A frame the server cannot act on. ``request_id`` is the frame's own, when it named one."""

    def __init__(
        self, type: str, message: str, *, request_id: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = {"type": type, "message": message}
        if details is not None:
            self.error["details"] = details
        self.request_id = request_id


def parse(frame: str | bytes, target: Target) -> ClientMessage:
    """One client frame as a message a socket to ``target`` takes, or :class:`ProtocolError`."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("InvalidJSON", "a frame must be UTF-8 JSON text") from None
    try:
        data = json.loads(frame, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("InvalidJSON", f"the frame is not JSON: {_short(str(exc))}") from None
    if not isinstance(data, dict):
        raise ProtocolError("ValidationError", "a message is a JSON object with a `type`")
    kind = data.get("type")
    request_id = data.get("request_id")
    named = request_id if isinstance(request_id, str) and 0 < len(request_id) <= MAX_ID else None
    allowed = (_REQUESTS[target], "abort", "ping")
    if not isinstance(kind, str) or kind not in allowed:
        _unknown_type(kind, target, allowed, named)
    try:
        message: ClientMessage = _MODELS[kind].model_validate(data)  # type: ignore[assignment]
    except ValidationError as exc:
        details = [
            {"path": ".".join(str(p) for p in e["loc"]) or "message", "message": e["msg"]}
            for e in exc.errors()[:_MAX_DETAILS]
        ]
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details[:3])
        raise ProtocolError(
            "ValidationError",
            f"invalid {kind} message: {_short(summary)}",
            request_id=named,
            details=details,
        ) from None
    return message


def _unknown_type(kind: object, target: Target, allowed: tuple[str, ...], request_id: str | None) -> NoReturn:
    shown = _short(json.dumps(kind), 60)
    hint = ""
    if kind in _REQUESTS.values():
        hint = f" ({kind} is for {'agent' if kind == 'prompt' else 'workflow'} sockets)"
    raise ProtocolError(
        "UnknownType",
        f"unknown message type {shown} on a{'n' if target == 'agent' else ''} {target} socket{hint}; "
        f"send one of: {', '.join(allowed)}",
        request_id=request_id,
    )


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _short(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def started_message(request_id: str, **ids: str) -> dict[str, Any]:
    """``{type: "started", request_id, run_id?, operation_id?}``."""
    return {"type": "started", "request_id": request_id, **ids}


def event_message(request_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """``{type: "event", request_id, event}``: the event envelope as everywhere else."""
    return {"type": "event", "request_id": request_id, "event": event}


def result_message(request_id: str, result: Any) -> dict[str, Any]:
    """``{type: "result", request_id, result}``."""
    return {"type": "result", "request_id": request_id, "result": result}


def error_message(error: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
    """``{type: "error", request_id?, error}``."""
    if request_id is None:
        return {"type": "error", "error": error}
    return {"type": "error", "request_id": request_id, "error": error}


def encode(message: dict[str, Any]) -> str:
    """A server message as the text of one frame."""
    return to_json(message).decode()
