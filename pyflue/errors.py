"""The one exception hierarchy of PyFlue.

Every error a user can cause or meet is a subclass of :class:`PyFlueError`, and its message says what
to do next. Errors cross every boundary (events, HTTP bodies, the CLI, the run store) as
``{"type": <class name>, "message": <str>}`` via :func:`error_payload`.
"""

from __future__ import annotations

import traceback
from typing import Any

__all__ = [
    "AbortedError",
    "AuthenticationError",
    "ConfigError",
    "ContextOverflowError",
    "InvalidIdError",
    "InvalidRequestError",
    "MaxTurnsError",
    "ModelAPIError",
    "ModelConnectionError",
    "ModelError",
    "ModelTimeoutError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PayloadValidationError",
    "PyFlueError",
    "RateLimitError",
    "ResultNotSerializableError",
    "RunCancelledError",
    "StoreError",
    "StreamError",
    "TaskDepthError",
    "ToolError",
    "ToolTimeoutError",
    "UnknownAgentError",
    "WorkerLostError",
    "WorkflowError",
    "error_payload",
]


class PyFlueError(Exception):
    """Root of every error PyFlue raises on purpose."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "message": str(self)}


class ConfigError(PyFlueError):
    """A configuration value is missing or wrong (an agent key, a model string, an env variable)."""


class InvalidIdError(ConfigError):
    """An instance, session or run id is not acceptable (empty, too long, or control characters)."""


class UnknownAgentError(ConfigError):
    """A named agent, profile or workflow does not exist; the message lists the available ones."""


class NotFoundError(PyFlueError):
    """A run, agent or workflow looked up by name or id does not exist."""


class StoreError(PyFlueError):
    """A store could not read or write its data (disk full, locked database, corrupt row)."""


class WorkerLostError(PyFlueError):
    """The worker delivering a dispatched input stopped before it finished (its lease expired):
    the attempt's outcome is unknown, and the input is delivered again if attempts are left."""


# -- the model layer -------------------------------------------------------------------------------


class ModelError(PyFlueError):
    """A model call failed. ``provider`` names the provider that failed."""

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.provider:
            data["provider"] = self.provider
        return data


class ModelConnectionError(ModelError):
    """The provider could not be reached (DNS, refused connection, TLS); retried before raising."""


class ModelTimeoutError(ModelError):
    """The provider did not answer in time; retried before raising."""


class StreamError(ModelError):
    """A stream ended before its final event, or the provider sent an ``error`` event mid-stream.

    PyFlue never returns a silently truncated answer: a cut stream is this error.
    """

    def __init__(self, message: str, *, provider: str | None = None, error_type: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.error_type = error_type


class ModelAPIError(ModelError):
    """The provider answered with an HTTP error. Carries the status, the provider's error type and
    the request id, which the provider's support asks for."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        for key in ("status_code", "error_type", "request_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class AuthenticationError(ModelAPIError):
    """401/403: the API key is missing, wrong, or lacks permission."""


class InvalidRequestError(ModelAPIError):
    """A 4xx the provider will not accept as sent (bad parameter, unknown model)."""


class ContextOverflowError(InvalidRequestError):
    """The prompt does not fit the model's context window. Compaction catches this and retries."""


class RateLimitError(ModelAPIError):
    """429 after every retry was spent."""


class OverloadedError(ModelAPIError):
    """5xx / 529 (``overloaded_error``) after every retry was spent."""


# -- agents ----------------------------------------------------------------------------------------


class ToolError(PyFlueError):
    """A tool failed. Inside the turn loop it goes back to the model as an error result instead."""


class ToolTimeoutError(ToolError):
    """A tool ran longer than its ``timeout``."""


class MaxTurnsError(PyFlueError):
    """The turn loop reached ``max_turns`` without a final answer; raise ``max_turns`` or simplify."""


class OutputValidationError(PyFlueError):
    """The model's typed output still failed validation after ``output_retries`` repairs."""


class TaskDepthError(PyFlueError):
    """Subagent tasks nested deeper than ``max_task_depth``."""


class AbortedError(PyFlueError):
    """The operation was aborted (``session.abort()``, a cancelled run, or a timeout)."""


# -- workflows -------------------------------------------------------------------------------------


class WorkflowError(PyFlueError):
    """A workflow could not be loaded or run as written."""


class PayloadValidationError(WorkflowError):
    """The payload does not match the workflow's ``Payload`` model."""


class ResultNotSerializableError(WorkflowError):
    """A workflow returned something that is not JSON-serialisable; return a dict of plain values."""


class RunCancelledError(WorkflowError):
    """The run was cancelled by id, by a timeout, or by Ctrl-C."""


_TRACEBACK_CHARS = 8_000
_SHOWN_CHARS = 80


def shown(value: object, limit: int = _SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters: a message names what the
    user passed without echoing a 10 000-character id back at them."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...[{len(text)} chars]"


def bounded_traceback(exc: BaseException, limit: int = _TRACEBACK_CHARS) -> str:
    """The formatted traceback of ``exc``, at most ``limit`` characters: when longer, its start is
    cut (the innermost frames and the exception line, which say what went wrong, are kept)."""
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut]\n{text[-limit:]}"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message"}`` for any exception, as it crosses a boundary."""
    if isinstance(exc, PyFlueError):
        return exc.to_dict()
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
