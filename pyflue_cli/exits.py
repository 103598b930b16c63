"""Exit codes, and how an error becomes one readable line.

Scripts branch on the exit code, so it says *why* the command stopped: the run failed (1), the
command could not be carried out as asked (2: bad arguments or input, unknown names, a missing key),
or the user pressed Ctrl-C (130). Tracebacks are for ``--verbose`` only: an error on stderr is one
line, its type and its message, so it can be grepped and shown in a CI log as it is.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "COMPLETED",
    "FAILED",
    "INTERRUPTED",
    "USAGE",
    "CliError",
    "exit_code_for",
    "one_line",
]

COMPLETED = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130

# Error types (by class name, as they cross the run store) that mean "the input or the setup is
# wrong" rather than "the run broke": the command exits 2 for them, like a usage error.
_USAGE_ERRORS = frozenset(
    {
        "ConfigError",
        "InvalidIdError",
        "UnknownAgentError",
        "NotFoundError",
        "PayloadValidationError",
    }
)


class CliError(Exception):
    """A problem the user can fix by changing the command line or its input; exits ``code``."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(error: BaseException | dict[str, Any] | None) -> int:
    """The exit code of a command that stopped on ``error`` (an exception or an error payload)."""
    if error is None:
        return COMPLETED
    if isinstance(error, CliError):
        return error.code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, dict):
        return USAGE if error.get("type") in _USAGE_ERRORS else FAILED
    return USAGE if _is_usage_error(type(error)) else FAILED


def _is_usage_error(cls: type) -> bool:
    return any(base.__name__ in _USAGE_ERRORS for base in cls.__mro__)


def one_line(error: BaseException | dict[str, Any]) -> str:
    """``Type: message`` on one line (pydantic's multi-line messages folded with ``; ``)."""
    if isinstance(error, CliError):
        return _fold(str(error))
    if isinstance(error, dict):
        kind = str(error.get("type") or "Error")
        message = str(error.get("message") or "")
    else:
        kind = type(error).__name__
        message = str(error)
    return f"{kind}: {_fold(message)}" if message else kind


def _fold(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return re.sub(r"\s+", " ", "; ".join(line for line in lines if line))
