"""The in-memory sandbox: a private filesystem that lives as long as its object, with no shell.

It has no shell on purpose: commands would have to run on the host, and a host command does not
see an in-memory filesystem — any "virtual shell" either lies about what it ran or runs on the host
unconfined. Agents that need commands get ``local(path)`` or a container sandbox.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping, Sequence

import anyio.to_thread

from ..errors import ConfigError
from .errors import CommandRefusedError, SandboxError, SandboxNotFoundError
from .matching import compile_glob, compile_regex, is_text, replace_exact, search_lines
from .paths import join_path, normalize
from .policy import SandboxPolicy
from .protocol import Entry, ExecResult, GrepMatch

__all__ = ["VirtualSandbox", "virtual"]

_Key = tuple[str, ...]


class VirtualSandbox:
    """An in-memory :class:`~pyflue.sandbox.Sandbox` (see :func:`virtual`). Every operation is a
    handful of dict operations with no await inside, so each is atomic on the event loop."""

    def __init__(self, policy: SandboxPolicy | None = None, max_bytes: int = 256 * 1024 * 1024) -> None:
        policy = policy or SandboxPolicy()
        if not isinstance(policy, SandboxPolicy):
            raise ConfigError(f"virtual(policy=...) takes a SandboxPolicy, got {type(policy).__name__}")
        if policy.shell:
            raise ConfigError(
                "the virtual sandbox has no shell (an in-memory filesystem cannot run host commands "
                "honestly); use local(path, policy=...) or a container sandbox for commands"
            )
        self._policy = policy
        self._max_bytes = max_bytes
        self._used = 0
        self._files: dict[_Key, tuple[bytes, float]] = {}
        self._dirs: dict[_Key, float] = {(): time.time()}

    def __repr__(self) -> str:
        return f"virtual({len(self._files)} files)"

    @property
    def policy(self) -> SandboxPolicy:
        return self._policy

    @property
    def has_shell(self) -> bool:
        return False

    # -- files -------------------------------------------------------------------------------------

    async def read(self, path: str) -> bytes:
        key = self._key(path)
        if key in self._dirs:
            raise SandboxError(f"{join_path(key)} is a directory; use list")
        return self._file(key)[0]

    async def write(self, path: str, data: bytes) -> None:
        self.write_now(path, data)

    def write_now(self, path: str, data: bytes) -> None:
        """:meth:`write` without awaiting: for seeding a sandbox from synchronous code."""
        key = self._key(path)
        if not isinstance(data, bytes | bytearray):
            raise SandboxError("write takes bytes")
        if not key:
            raise SandboxError("/ is the sandbox root, a directory; give a file path")
        if key in self._dirs:
            raise SandboxError(f"{join_path(key)} is a directory; give a file path")
        if len(data) > self._policy.max_file_bytes:
            raise SandboxError(
                f"{len(data)} bytes is over this sandbox's limit of {self._policy.max_file_bytes}"
            )
        for i in range(1, len(key)):
            if key[:i] in self._files:
                raise SandboxError(f"{join_path(key[:i])} is a file, not a directory")
        old = len(self._files[key][0]) if key in self._files else 0
        if self._used - old + len(data) > self._max_bytes:
            raise SandboxError(f"the virtual sandbox is full ({self._max_bytes} bytes); remove files first")
        now = time.time()
        for i in range(1, len(key)):
            self._dirs.setdefault(key[:i], now)
        self._files[key] = (bytes(data), now)
        self._used += len(data) - old

    async def edit(self, path: str, old: str, new: str, *, replace_all: bool = False) -> int:
        key = self._key(path)
        data, count = replace_exact(await self.read(path), join_path(key), old, new, replace_all)
        self.write_now(path, data)
        return count

    async def list(self, path: str = "/") -> builtins.list[Entry]:
        key = self._key(path)
        if key in self._files:
            raise SandboxError(f"{join_path(key)} is a file, not a directory")
        if key not in self._dirs:
            raise SandboxNotFoundError(f"no such directory: {join_path(key)}")
        depth = len(key) + 1
        children = [k for k in (*self._dirs, *self._files) if len(k) == depth and k[: len(key)] == key]
        return [self._entry(k) for k in sorted(children)]

    async def stat(self, path: str) -> Entry:
        key = self._key(path)
        if key not in self._dirs and key not in self._files:
            raise SandboxNotFoundError(f"no such file or directory: {join_path(key)}")
        return self._entry(key)

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        key = self._key(path)
        if not key:
            raise SandboxError("the sandbox root cannot be removed")
        if key in self._files:
            self._used -= len(self._files.pop(key)[0])
            return
        if key not in self._dirs:
            raise SandboxNotFoundError(f"no such file or directory: {join_path(key)}")
        inside = [k for k in (*self._dirs, *self._files) if len(k) > len(key) and k[: len(key)] == key]
        if inside and not recursive:
            raise SandboxError(f"{join_path(key)} is not empty; pass recursive=True to remove it all")
        for k in inside:
            if k in self._files:
                self._used -= len(self._files.pop(k)[0])
            else:
                del self._dirs[k]
        del self._dirs[key]

    async def glob(self, pattern: str, path: str = "/", *, limit: int = 1000) -> builtins.list[str]:
        regex = compile_glob(pattern)
        key = self._key(path)
        found = sorted(
            join_path(k)
            for k in (*self._dirs, *self._files)
            if len(k) > len(key) and k[: len(key)] == key and regex.match("/".join(k[len(key) :]))
        )
        return found[:limit]

    async def grep(
        self,
        pattern: str,
        path: str = "/",
        *,
        include: str | None = None,
        ignore_case: bool = False,
        limit: int = 200,
    ) -> builtins.list[GrepMatch]:
        regex = compile_regex(pattern, ignore_case)
        wanted = compile_glob(include) if include else None
        key = self._key(path)
        if key not in self._files and key not in self._dirs:
            raise SandboxNotFoundError(f"no such file or directory: {join_path(key)}")
        files = sorted(
            (k, data)
            for k, (data, _) in self._files.items()
            if k[: len(key)] == key and (wanted is None or k == key or wanted.match("/".join(k[len(key) :])))
        )

        def search() -> builtins.list[GrepMatch]:
            matches: builtins.list[GrepMatch] = []
            for k, data in files:
                if not is_text(data):
                    continue
                for number, line in search_lines(data, regex, limit - len(matches)):
                    matches.append(GrepMatch(join_path(k), number, line))
                if len(matches) >= limit:
                    break
            return matches

        return await anyio.to_thread.run_sync(search, abandon_on_cancel=True)

    # -- commands ----------------------------------------------------------------------------------

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
        raise CommandRefusedError(
            "the virtual sandbox has no shell: it is an in-memory filesystem; use the file tools "
            "(read, write, edit, grep, glob)"
        )

    async def aclose(self) -> None:
        self._files.clear()
        self._dirs = {(): time.time()}
        self._used = 0

    # -- helpers -----------------------------------------------------------------------------------

    def _key(self, path: str) -> _Key:
        return tuple(normalize(path))

    def _file(self, key: _Key) -> tuple[bytes, float]:
        try:
            return self._files[key]
        except KeyError:
            raise SandboxNotFoundError(f"no such file: {join_path(key)}") from None

    def _entry(self, key: _Key) -> Entry:
        if key in self._files:
            data, mtime = self._files[key]
            return Entry(join_path(key), "file", len(data), mtime)
        return Entry(join_path(key), "dir", 0, self._dirs[key])


def virtual(
    files: Mapping[str, str | bytes] | None = None,
    *,
    policy: SandboxPolicy | None = None,
    max_bytes: int = 256 * 1024 * 1024,
) -> VirtualSandbox:
    """An in-memory sandbox, optionally seeded with ``files`` (sandbox path → text or bytes).

    It has no shell (see the module docstring); its policy only sets the file size limit. It holds
    at most ``max_bytes`` of file data."""
    sandbox = VirtualSandbox(policy, max_bytes)
    for path, content in (files or {}).items():
        if not isinstance(content, str | bytes):
            raise ConfigError(f"virtual(files=...) values are text or bytes, got {type(content).__name__}")
        try:
            sandbox.write_now(path, content.encode() if isinstance(content, str) else content)
        except SandboxError as exc:
            raise ConfigError(f"virtual(files=...): {exc}") from None
    return sandbox
