"""Reading requests: JSON bodies (size limit 413, content type 415, bad JSON 400), models (422
with field paths), names and ids from the path, and query parameters."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from .errors import ApiError
from .schemas import MAX_ID, MAX_NAME

__all__ = ["id_param", "name_param", "query_int", "read_json", "validate", "wants_sse"]

M = TypeVar("M", bound=BaseModel)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


async def read_json(request: Request, max_body: int) -> Any:
    """The JSON body, or ``None`` when there is none. Oversized bodies are refused as soon as the
    declared length or the bytes read so far exceed ``max_body``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _too_large(max_body)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body must be JSON (Content-Type: application/json), got {media or 'no content type'!r}",
        )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "InvalidJSON", f"the body is not valid JSON: {_short(str(exc))}") from None


def validate(model: type[M], data: Any) -> M:
    """``data`` as ``model``; 422 listing each problem with its field path."""
    if data is None:
        raise ApiError(
            422, "ValidationError", "a JSON body is required", details=[_problem(("body",), "required")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [_problem(("body", *e["loc"]), e["msg"]) for e in exc.errors()[:20]]
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details[:3])
        raise ApiError(
            422, "ValidationError", f"the body is invalid: {_short(summary)}", details=details
        ) from None


def name_param(request: Request, key: str = "name") -> str:
    """An agent or workflow name from the path: ``[a-z0-9][a-z0-9_-]*``."""
    value: str = request.path_params[key]
    if len(value) > MAX_NAME or not _NAME.match(value):
        raise _invalid(("path", key), f"must match [a-z0-9][a-z0-9_-]* (at most {MAX_NAME} characters)")
    return value


def id_param(value: str, where: tuple[str, ...]) -> str:
    """An instance, session or run id: printable text of 1 to 256 characters, kept as data."""
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise _invalid(where, f"must be 1 to {MAX_ID} printable characters")
    return value


def query_int(request: Request, key: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _invalid(("query", key), f"must be a whole number, got {_short(text)!r}") from None
    if not low <= value <= high:
        raise _invalid(("query", key), f"must be between {low} and {high}, got {value}")
    return value


def wants_sse(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _invalid(where: tuple[str, ...], message: str) -> ApiError:
    path = ".".join(where)
    return ApiError(422, "ValidationError", f"{path}: {message}", details=[_problem(where, message)])


def _problem(loc: tuple[Any, ...], message: str) -> dict[str, str]:
    return {"path": ".".join(str(p) for p in loc), "message": message}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestTooLarge", f"the body is larger than {limit} bytes")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
