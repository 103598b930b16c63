"""``--payload``: JSON given inline, from a file (``@path``) or from standard input (``-``).

Parsed here, before any of the core is imported, so a typo in a payload costs the user a fraction of
a second and one line naming the position of the mistake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from .exits import CliError

__all__ = ["read_payload"]


def read_payload(spec: str | None, stdin: IO[str] | None = None) -> Any:
    """The payload a ``--payload`` value denotes; ``None`` when the option was not given."""
    if spec is None:
        return None
    if spec == "-":
        source, text = "standard input", (stdin or sys.stdin).read()
    elif spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CliError(f"--payload {spec}: no such file {str(path)!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--payload {spec}: cannot read {str(path)!r}: {exc}") from None
    else:
        source, text = "--payload", spec
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (to read a file, write --payload @FILE)" if spec is not None and spec[:1] not in "@-" else ""
        raise CliError(
            f"invalid JSON in {source}: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
