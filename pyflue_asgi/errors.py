"""The one error shape of the HTTP API, and how exceptions become it.

Every 4xx/5xx answer is ``{"error": {"type", "message", "details"?}}`` — Starlette's own 404/405
included. Core errors (:mod:`pyflue.errors`) keep their class name as ``type`` and their message,
which is written for users; anything else is an internal error whose text stays in the server log
unless the app runs with ``debug=True``.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyflue import errors as core
from pyflue.ids import new_ulid

__all__ = [
    "ApiError",
    "envelope",
    "error_body",
    "error_response",
    "exception_handlers",
    "public",
    "status_for",
]

_log = logging.getLogger("pyflue.asgi")

#: Core error classes and the status that fits them; the first match in MRO order wins.
_STATUS: dict[type[BaseException], int] = {
    core.UnknownAgentError: 404,
    core.NotFoundError: 404,
    core.InvalidIdError: 422,
    core.PayloadValidationError: 422,
    core.AbortedError: 409,
    core.RunCancelledError: 409,
    core.ModelTimeoutError: 504,
    core.ModelError: 502,
}

_HTTP_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An answer the adapter decides itself (a bad body, a busy session, a missing token)."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.details = details
        self.headers = headers


def envelope(type: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def error_body(exc: BaseException, *, debug: bool) -> dict[str, Any]:
    """The envelope of ``exc`` and its status, the way :func:`error_response` answers it."""
    return _describe(exc, debug)[1]


def error_response(exc: BaseException, *, debug: bool) -> Response:
    """The envelope for any exception a route lets escape."""
    status, body, headers = _describe(exc, debug)
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(exc: BaseException, debug: bool) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    if isinstance(exc, ApiError):
        return exc.status, envelope(exc.type, exc.message, exc.details), exc.headers
    if isinstance(exc, HTTPException):
        kind = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        return exc.status_code, envelope(kind, _http_message(exc)), dict(exc.headers or {})
    if isinstance(exc, core.PyFlueError):
        payload = exc.to_dict()
        kind, message = payload.pop("type"), payload.pop("message")
        status = status_for(exc)
        if status >= 500:
            _log.warning("request failed: %s: %s", kind, message)
        return status, envelope(kind, message, payload or None), None
    incident = new_ulid()
    _log.error("internal error %s", incident, exc_info=exc)
    message = (
        f"{type(exc).__name__}: {exc}"
        if debug
        else f"internal error {incident}; the server log has the details"
    )
    return 500, envelope("InternalError", message), None


def _http_message(exc: HTTPException) -> str:
    if exc.status_code == 404:
        return "no such route; GET /openapi.json lists them"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"method not allowed here; allowed: {allowed}" if allowed else "method not allowed here"
    return str(exc.detail)


def public(data: dict[str, Any], *, debug: bool) -> dict[str, Any]:
    """A run record's or a ``run_end`` event's dict as clients see it: the typed error stays (it is
    the run's outcome), its ``traceback`` (file paths, source lines) only with ``debug``."""
    if debug:
        return data
    holder = data.get("data") if "event_id" in data else data
    if not isinstance(holder, dict):
        return data
    error = holder.get("error")
    if not isinstance(error, dict) or "traceback" not in error:
        return data
    cleaned = {**holder, "error": {k: v for k, v in error.items() if k != "traceback"}}
    return {**data, "data": cleaned} if holder is not data else cleaned


def exception_handlers(debug: bool) -> dict[Any, Any]:
    """Starlette exception handlers: every error, the framework's 404/405 included, as the envelope."""

    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(exc, debug=debug)

    return {Exception: handle, HTTPException: handle, ApiError: handle}
