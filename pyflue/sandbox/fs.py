"""The code-facing workspace: :class:`SandboxFS`, which the core exposes as ``session.fs`` and
``session.shell``, and which the model-facing tools use too (one path for checks and events).

Every write (``write``, ``edit``, ``remove``) emits ``fs_write`` ``{path, bytes, op}`` and every
command that ran emits ``shell_exec`` ``{command, exit_code, duration_ms, timed_out}`` through the
``emit`` function it was built with, so file and shell actions show in run logs, OTel and the CLI.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .errors import CommandRefusedError, SandboxError, SandboxNotFoundError
from .paths import join_path, split_path
from .protocol import Entry, ExecResult, GrepMatch, Sandbox
from .virtual import virtual

__all__ = ["Emit", "SandboxFS", "as_sandbox", "redact"]

Emit = Callable[[str, dict[str, Any]], Any]


def as_sandbox(value: Any, owner: str = "agent") -> Sandbox:
    """A config's ``sandbox`` value as a sandbox: ``None`` or ``"virtual"`` → a new in-memory one;
    an object implementing :class:`Sandbox` → itself. Anything else is a :class:`ConfigError`."""
    if value is None or value == "virtual":
        return virtual()
    if isinstance(value, Sandbox):
        return value
    raise ConfigError(
        f"{owner}: sandbox must be 'virtual', local(path) or an object implementing the Sandbox "
        f"protocol, got {type(value).__name__}"
    )


def redact(text: str, secrets: dict[str, str] | Any) -> str:
    """``text`` with the value of every granted secret (4+ characters) replaced by its name."""
    for name, value in secrets.items():
        if len(value) >= 4 and value in text:
            text = text.replace(value, f"[secret {name}]")
    return text


class SandboxFS:
    """Files and commands of one sandbox, reporting writes and commands through ``emit``.

    Construct it with the agent's sandbox and the emit function of the scope that owns it (the core
    passes the session's or the current operation's). Text methods use UTF-8."""

    __slots__ = ("_emit", "_sandbox")

    def __init__(self, sandbox: Sandbox, emit: Emit | None = None) -> None:
        if not isinstance(sandbox, Sandbox):
            raise ConfigError(f"SandboxFS needs a Sandbox, got {type(sandbox).__name__}")
        self._sandbox = sandbox
        self._emit = emit

    def __repr__(self) -> str:
        return f"SandboxFS({self._sandbox!r})"

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox

    def _report(self, type: str, data: dict[str, Any]) -> None:
        if self._emit is not None:
            self._emit(type, data)

    # -- files -------------------------------------------------------------------------------------

    async def read(self, path: str) -> str:
        """The file's text. A file that is not UTF-8 is a :class:`SandboxError` (use read_bytes)."""
        data = await self._sandbox.read(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SandboxError(
                f"{_display(path)} is not UTF-8 text ({len(data)} bytes); use read_bytes"
            ) from None

    async def read_bytes(self, path: str) -> bytes:
        return await self._sandbox.read(path)

    async def write(self, path: str, content: str | bytes) -> int:
        """Create or replace a file (parents are created); returns the bytes written."""
        if not isinstance(content, str | bytes):
            raise SandboxError(f"write takes text or bytes, got {type(content).__name__}")
        data = content.encode("utf-8") if isinstance(content, str) else content
        await self._sandbox.write(path, data)
        self._report("fs_write", {"path": _display(path), "bytes": len(data), "op": "write"})
        return len(data)

    async def edit(self, path: str, old: str, new: str, *, replace_all: bool = False) -> int:
        """Replace exact text ``old`` (which must be unique unless ``replace_all``) by ``new``;
        returns how many replacements were made."""
        count = await self._sandbox.edit(path, old, new, replace_all=replace_all)
        size = (await self._sandbox.stat(path)).size
        self._report("fs_write", {"path": _display(path), "bytes": size, "op": "edit"})
        return count

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._sandbox.remove(path, recursive=recursive)
        self._report("fs_write", {"path": _display(path), "bytes": 0, "op": "remove"})

    async def list(self, path: str = "/") -> builtins.list[Entry]:
        return await self._sandbox.list(path)

    async def stat(self, path: str) -> Entry:
        return await self._sandbox.stat(path)

    async def exists(self, path: str) -> bool:
        """Whether something is at ``path``. A path that is refused (an escape) is an error, not False."""
        try:
            await self._sandbox.stat(path)
        except SandboxNotFoundError:
            return False
        return True

    async def glob(self, pattern: str, path: str = "/", *, limit: int = 1000) -> builtins.list[str]:
        return await self._sandbox.glob(pattern, path, limit=limit)

    async def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        include: str | None = None,
        ignore_case: bool = False,
        limit: int = 200,
    ) -> builtins.list[GrepMatch]:
        return await self._sandbox.grep(pattern, path, include=include, ignore_case=ignore_case, limit=limit)

    # -- commands ----------------------------------------------------------------------------------

    async def shell(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str = "/",
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``command`` under the sandbox's policy: a string is read like a shell would (and
        refused if the policy forbids what it uses), a list is an argv run without a shell.
        ``timeout`` may shorten the policy's, never lengthen it. A non-zero exit is a result, not an
        error; a refused command raises :class:`CommandRefusedError`."""
        if not self._sandbox.has_shell:
            raise CommandRefusedError(
                f"this sandbox ({type(self._sandbox).__name__}) has no shell; use the file tools "
                "(read, write, edit, grep, glob), or give the agent local(path) or a container sandbox"
            )
        policy = self._sandbox.policy
        checked = policy.check(command)
        limit = policy.timeout if timeout is None else min(max(float(timeout), 0.001), policy.timeout)
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        result = await self._sandbox.exec(
            checked.argv,
            timeout=limit,
            max_output=policy.max_output,
            cwd=cwd,
            env=dict(policy.secrets),
            stdin=data,
        )
        result = replace(result, command=checked.text)
        self._report(
            "shell_exec",
            {
                "command": redact(checked.text, policy.secrets),
                "exit_code": result.exit_code,
                "duration_ms": result.duration_ms,
                "timed_out": result.timed_out,
            },
        )
        return result


def _display(path: str) -> str:
    """How an event names a path: its components joined, as given (no host path ever appears)."""
    return join_path(split_path(path))
