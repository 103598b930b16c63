"""The :class:`Sandbox` protocol: what a workspace must offer agents, so a local directory, the
in-memory filesystem, a container or a remote machine are interchangeable.

Contract, for every implementation:

- Paths are sandbox paths (see :mod:`pyflue.sandbox.paths`): POSIX strings relative to the root, or
  absolute with ``/`` as the root. Every method checks them with ``split_path`` and refuses, with
  :class:`SandboxPathError`, any that would name something outside the root (``..`` above it, a
  symlink pointing out). A missing path is :class:`SandboxNotFoundError`. Paths a method returns
  are absolute sandbox paths (``/src/app.py``), never host paths.
- Every method is async and never blocks the event loop.
- ``exec`` runs an argv the policy already allowed (callers go through ``policy.check``). Its
  environment is a clean base (``PATH`` and ``LANG`` from the policy, ``HOME`` inside the sandbox)
  plus ``env`` (the secrets the policy grants) — never the host's environment. It kills the
  command's whole process group when ``timeout`` passes or the call is cancelled, keeps at most
  ``max_output`` bytes of each stream, and leaves no process of the command running when it returns.
- ``aclose()`` releases what the sandbox holds (a container, a connection); the owner of the
  sandbox calls it once.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from .policy import SandboxPolicy

__all__ = ["Entry", "ExecResult", "GrepMatch", "Sandbox"]

EntryKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A file, directory or symlink: its absolute sandbox ``path``, ``kind``, ``size`` in bytes and
    modification time (seconds since the epoch; None when the backend has none)."""

    path: str
    kind: EntryKind
    size: int
    mtime: float | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class GrepMatch:
    """One matching line: sandbox ``path``, 1-based ``line`` number and the line's ``text``."""

    path: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a command ended. ``exit_code`` is None when it was killed (timeout, cancellation) or a
    negative signal number when a signal ended it; ``truncated`` says output was cut to the limit."""

    command: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@runtime_checkable
class Sandbox(Protocol):
    """A workspace for an agent: files and, when its policy allows, commands (see module doc)."""

    @property
    def policy(self) -> SandboxPolicy:
        """What commands may do here (and the file size limit)."""
        ...

    @property
    def has_shell(self) -> bool:
        """Whether this sandbox can run commands at all (the policy may still refuse them)."""
        ...

    async def read(self, path: str) -> bytes:
        """The file's bytes. A directory, or a file over ``policy.max_file_bytes``, is an error."""
        ...

    async def write(self, path: str, data: bytes) -> None:
        """Create or replace the file, creating missing parent directories; atomic where possible."""
        ...

    async def edit(self, path: str, old: str, new: str, *, replace_all: bool = False) -> int:
        """Replace exact text ``old`` by ``new`` in a UTF-8 file and return how many replacements were
        made. ``old`` must occur exactly once unless ``replace_all``; concurrent edits of one
        sandbox do not lose each other's changes."""
        ...

    async def list(self, path: str = "/") -> builtins.list[Entry]:
        """The entries of a directory, sorted by name; symlinks are listed, not followed."""
        ...

    async def glob(self, pattern: str, path: str = "/", *, limit: int = 1000) -> builtins.list[str]:
        """Paths under ``path`` whose path relative to it matches ``pattern`` (``*``, ``?``,
        ``[...]``, ``**`` for any depth), sorted, at most ``limit``. Symlinked directories are not
        descended."""
        ...

    async def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        include: str | None = None,
        ignore_case: bool = False,
        limit: int = 200,
    ) -> builtins.list[GrepMatch]:
        """Lines matching regular expression ``pattern`` in the text files under ``path`` (or in the
        file ``path``), in files whose relative path matches glob ``include``; at most ``limit``."""
        ...

    async def stat(self, path: str) -> Entry:
        """The entry at ``path`` (symlinks inside the sandbox are followed)."""
        ...

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, a symlink, or (``recursive``) a directory tree. The root cannot be removed."""
        ...

    async def exec(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        max_output: int,
        cwd: str = "/",
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` (see module doc). A sandbox without a shell raises CommandRefusedError."""
        ...

    async def aclose(self) -> None:
        """Release what the sandbox holds."""
        ...
