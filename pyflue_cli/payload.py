"""``--payload``: JSON given inline, from a file (``@path``) or from standard input (``-``).

Parsed here, before any of the core is imported, so a typo in a payload costs the user a fraction of
a second and one line naming the position of the mistake.

Only strict JSON is a payload. Python's parser also takes ``NaN``, ``Infinity`` and ``-Infinity``
(and turns ``1e999`` into infinity), none of which JSON can hold: every later reader of the run
would get invalid JSON back, so they are refused. ``null`` is refused too: the core reads "no
payload" as ``{}``, so a ``null`` would be silently replaced; leaving ``--payload`` out says that.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import IO, Any

from .exits import CliError

__all__ = ["read_payload"]

_SHOWN = 60  # how much of a file name or constant an error message repeats


def read_payload(spec: str | None, stdin: IO[str] | None = None) -> Any:
    """The payload a ``--payload`` value denotes; ``None`` when the option was not given.
    ``CliError`` (one line, exit 2) for anything that is not a strict JSON value other than null."""
    if spec is None:
        return None
    source, text = _read(spec, stdin)
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except json.JSONDecodeError as exc:
        hint = " (to read a file, write --payload @FILE)" if spec[:1] not in ("@", "-") else ""
        raise CliError(
            f"invalid JSON in {source}: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except _NotJson as exc:
        raise CliError(f"invalid JSON in {source}: {exc} (JSON has no NaN or Infinity)") from None
    except RecursionError:
        raise CliError(f"invalid JSON in {source}: nested too deeply") from None
    if value is None:
        raise CliError(f"{source} is null; leave --payload out for no payload (the workflow gets {{}})")
    return value


def _read(spec: str, stdin: IO[str] | None) -> tuple[str, str]:
    """``(where the text came from, the text)``."""
    if spec == "-":
        try:
            return "standard input", (stdin or sys.stdin).read()
        except UnicodeDecodeError as exc:
            raise CliError(f"--payload -: standard input is not UTF-8 text ({exc.reason})") from None
    if not spec.startswith("@"):
        return "--payload", spec
    path = Path(spec[1:]).expanduser()
    shown = _short(str(path))
    try:
        return shown, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"--payload @FILE: no such file {shown!r}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"--payload @FILE: {shown!r} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CliError(f"--payload @FILE: cannot read {shown!r}: {reason}") from None


class _NotJson(ValueError):
    """A number JSON cannot hold (raised inside the parser, reported as one line)."""


def _not_json(constant: str) -> Any:
    raise _NotJson(f"{constant} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"{_short(text)} is too large for a JSON number")
    return value


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
