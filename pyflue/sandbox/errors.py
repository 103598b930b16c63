"""The sandbox's errors. All are :class:`~pyflue.errors.ToolError` subclasses: raised inside a file or
shell tool they go back to the model as an error result it can act on; raised from ``session.fs`` /
``session.shell`` they reach the calling code with the same message."""

from __future__ import annotations

from ..errors import ToolError

__all__ = ["CommandRefusedError", "SandboxError", "SandboxNotFoundError", "SandboxPathError"]


class SandboxError(ToolError):
    """A sandbox operation failed (a file too large, a directory where a file was expected, ...)."""


class SandboxPathError(SandboxError):
    """A path was refused: it escapes the sandbox (``..`` above the root, a symlink pointing out, a
    symlink swapped in while the path was opened), holds a NUL or control character, or is too long."""


class SandboxNotFoundError(SandboxError):
    """No file or directory at that sandbox path."""


class CommandRefusedError(SandboxError):
    """The sandbox's policy refuses the command: the shell is off, the program is not allowed, or the
    command uses shell syntax (pipes, ``;``, substitution, ...) the policy forbids."""
