"""Exit codes, and how an error becomes one readable line.

Scripts branch on the exit code, so it says *why* the command stopped:

- 0: the command did what was asked (for ``run``: the run completed);
- 1: a run was recorded and did not complete (failed, cancelled, timed out): it exists, and
  ``pyflue logs RUN_ID`` shows why; for ``agents`` / ``workflows``: a file failed to import;
- 2: nothing ran, so nothing was recorded: bad arguments or input, unknown names, no project, a
  missing key noticed before a run began;
- 130 / 143: interrupted by SIGINT / SIGTERM.

Tracebacks are for ``--verbose`` only: an error on stderr is one line, its type and its message, so
it can be grepped and shown in a CI log as it is.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = [
    "COMPLETED",
    "FAILED",
    "INTERRUPTED",
    "USAGE",
    "CliError",
    "exit_code_for",
    "one_line",
    "print_error",
    "print_note",
]

COMPLETED = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130

# Exceptions (matched by class name, any base) that stop a command before anything ran because the
# input or the setup is wrong: the command exits 2 for them, like a usage error.
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


def exit_code_for(error: BaseException) -> int:
    """The exit code of a command that stopped on ``error`` before it recorded anything."""
    if isinstance(error, CliError):
        return error.code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return USAGE if any(base.__name__ in _USAGE_ERRORS for base in type(error).__mro__) else FAILED


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


def print_error(line: str, traceback: str | None = None) -> None:
    """``pyflue: <line>`` on stderr; a traceback (``--verbose``) comes first, so the last line of
    stderr is always the summary."""
    if traceback:
        sys.stderr.write(traceback if traceback.endswith("\n") else traceback + "\n")
    print(f"pyflue: {line}", file=sys.stderr)


def print_note(text: str) -> None:
    """``pyflue: note: <text>`` on stderr: something a person should know, never an error."""
    print(f"pyflue: note: {text}", file=sys.stderr)


def _fold(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return re.sub(r"\s+", " ", "; ".join(line for line in lines if line))
