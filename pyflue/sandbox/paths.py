"""Sandbox paths: POSIX strings relative to the sandbox root, or absolute with ``/`` as that root.

A path is data from a user or a model, never a host path. :func:`split_path` checks it and splits it
into components before any backend looks at it; ``..`` is resolved by the backends (the local one
resolves it against real directories, after following symlinks that stay inside).
"""

from __future__ import annotations

from ..errors import shown
from .errors import SandboxPathError

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "join_path", "normalize", "split_path"]

#: Linux's PATH_MAX and NAME_MAX: longer paths are refused before any system call sees them.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def split_path(path: object) -> list[str]:
    """The components of sandbox path ``path`` (``.`` and empty ones dropped, ``..`` kept for the
    backend to resolve). Raises :class:`SandboxPathError` for a non-string, a NUL or other control
    character, text that is not encodable (lone surrogates), or a path or name that is too long."""
    if not isinstance(path, str):
        raise SandboxPathError(f"a sandbox path must be a string, got {type(path).__name__}")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise SandboxPathError("the path is not valid text (it holds a lone surrogate)") from None
    if size > MAX_PATH_BYTES:
        raise SandboxPathError(f"the path is {size} bytes long; at most {MAX_PATH_BYTES} are allowed")
    bad = next((c for c in path if c < " " or c == "\x7f"), None)
    if bad is not None:
        raise SandboxPathError(f"the path holds the control character {bad!r}; remove it")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    for part in parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise SandboxPathError(
                f"a path component is {len(part.encode('utf-8'))} bytes long; at most {MAX_NAME_BYTES}"
            )
    return parts


def join_path(parts: list[str] | tuple[str, ...]) -> str:
    """The sandbox path of resolved components, as shown to users and models: ``/a/b``."""
    return "/" + "/".join(parts)


def normalize(path: object) -> list[str]:
    """``path``'s components with ``..`` resolved lexically (for a backend without symlinks).
    ``..`` above the root is a :class:`SandboxPathError`, never clamped: it names nothing inside."""
    resolved: list[str] = []
    for part in split_path(path):
        if part == "..":
            if not resolved:
                raise SandboxPathError(f"{shown(path)} goes above the sandbox root with '..'")
            resolved.pop()
        else:
            resolved.append(part)
    return resolved
