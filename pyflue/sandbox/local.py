"""The local sandbox: a directory on disk that the file API cannot leave.

File operations resolve paths with :mod:`pyflue.sandbox.resolve` (descriptor by descriptor, no
symlink followed out of the root) and run in worker threads. Commands run on the host, in the root
directory, with a clean environment, under the sandbox's policy: the *file API* is confined, the
*commands* are not (see docs/sandbox.md — a local sandbox is not a container).
"""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from ..errors import ConfigError
from .errors import SandboxError, SandboxNotFoundError
from .matching import compile_glob, compile_regex, is_text, replace_exact, search_lines
from .paths import join_path
from .policy import SandboxPolicy
from .process import run_process
from .protocol import Entry, EntryKind, ExecResult, GrepMatch
from .resolve import DIR_FLAGS, Resolved, Root, os_errors

__all__ = ["LocalSandbox", "local"]

_T = TypeVar("_T")
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: Entries a glob or grep walk visits at most: a bound on the work one tool call can cause.
_MAX_WALK = 100_000


class LocalSandbox:
    """A :class:`~pyflue.sandbox.Sandbox` over a host directory (see :func:`local`)."""

    def __init__(self, root: str, policy: SandboxPolicy) -> None:
        self._root = Root(root)
        self._policy = policy
        self._edit_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"local({self._root.host!r})"

    @property
    def policy(self) -> SandboxPolicy:
        return self._policy

    @property
    def has_shell(self) -> bool:
        return True

    @property
    def host_path(self) -> str:
        """The root's real path on the host (for code that set the sandbox up, not for models)."""
        return self._root.host

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    # -- files -------------------------------------------------------------------------------------

    async def read(self, path: str) -> bytes:
        return await self._run(lambda: self._read(path))

    def _read(self, path: str) -> bytes:
        limit = self._policy.max_file_bytes
        with self._root.resolve(path) as r, os_errors(path):
            if r.name is None or (r.st is not None and stat.S_ISDIR(r.st.st_mode)):
                raise SandboxError(f"{r.path} is a directory; use list")
            if r.st is None:
                raise SandboxNotFoundError(f"no such file: {r.path}")
            fd = os.open(r.name, _FILE_FLAGS, dir_fd=r.dir_fd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise SandboxError(f"{r.path} is not a regular file")
                if st.st_size > limit:
                    raise SandboxError(
                        f"{r.path} is {st.st_size} bytes, over this sandbox's limit of {limit}"
                    )
                os.set_blocking(fd, True)
                chunks: list[bytes] = []
                size = 0
                while chunk := os.read(fd, 1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise SandboxError(f"{r.path} is over this sandbox's limit of {limit} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)

    async def write(self, path: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray):
            raise SandboxError("write takes bytes")
        if len(data) > self._policy.max_file_bytes:
            raise SandboxError(
                f"{len(data)} bytes is over this sandbox's limit of {self._policy.max_file_bytes}"
            )
        await self._run(lambda: self._write(path, bytes(data)))

    def _write(self, path: str, data: bytes) -> None:
        with self._root.resolve(path, create_parents=True) as r, os_errors(path):
            if r.name is None or (r.st is not None and stat.S_ISDIR(r.st.st_mode)):
                raise SandboxError(f"{r.path} is a directory; give a file path")
            # write a new file next to it and rename it over the old one: readers never see half a
            # file, and rename replaces a symlink swapped in meanwhile instead of following it
            temp = f".{r.name[:200]}.{secrets.token_hex(6)}.tmp"
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o666,
                dir_fd=r.dir_fd,
            )
            try:
                try:
                    if r.st is not None and stat.S_ISREG(r.st.st_mode):
                        os.fchmod(fd, stat.S_IMODE(r.st.st_mode))
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(temp, r.name, src_dir_fd=r.dir_fd, dst_dir_fd=r.dir_fd)
            except BaseException:
                try:
                    os.unlink(temp, dir_fd=r.dir_fd)
                except OSError:
                    pass
                raise

    async def edit(self, path: str, old: str, new: str, *, replace_all: bool = False) -> int:
        def run() -> int:
            updated, count = replace_exact(self._read(path), path, old, new, replace_all)
            self._write(path, updated)
            return count

        async with self._edit_lock:  # read-modify-write: concurrent edits must not lose each other
            return await self._run(run)

    async def list(self, path: str = "/") -> builtins.list[Entry]:
        return await self._run(lambda: self._list(path))

    def _list(self, path: str) -> builtins.list[Entry]:
        with self._root.resolve(path) as r, os_errors(path):
            if r.st is None:
                raise SandboxNotFoundError(f"no such directory: {r.path}")
            fd = r.open_dir()
            try:
                return [
                    _entry(join_path([*r.parts, n]), os.stat(n, dir_fd=fd, follow_symlinks=False))
                    for n in sorted(os.listdir(fd))
                ]
            finally:
                os.close(fd)

    async def stat(self, path: str) -> Entry:
        return await self._run(lambda: self._stat(path))

    def _stat(self, path: str) -> Entry:
        with self._root.resolve(path) as r:
            if r.st is None:
                raise SandboxNotFoundError(f"no such file or directory: {r.path}")
            return _entry(r.path, r.st)

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._run(lambda: self._remove(path, recursive))

    def _remove(self, path: str, recursive: bool) -> None:
        with self._root.resolve(path, follow_last=False) as r, os_errors(path):
            if r.name is None:
                raise SandboxError("the sandbox root cannot be removed")
            if r.st is None:
                raise SandboxNotFoundError(f"no such file or directory: {r.path}")
            if not stat.S_ISDIR(r.st.st_mode):
                os.unlink(r.name, dir_fd=r.dir_fd)
            elif recursive:
                shutil.rmtree(r.name, dir_fd=r.dir_fd)  # descriptor-based: never follows symlinks
            else:
                os.rmdir(r.name, dir_fd=r.dir_fd)

    async def glob(self, pattern: str, path: str = "/", *, limit: int = 1000) -> builtins.list[str]:
        regex = compile_glob(pattern)

        def run() -> builtins.list[str]:
            with self._root.resolve(path) as r, os_errors(path):
                found = [
                    join_path([*r.parts, *rel])
                    for rel, _, _ in _walk_resolved(r)
                    if regex.match("/".join(rel))
                ]
            return sorted(found)[:limit]

        return await self._run(run)

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
        max_bytes = self._policy.max_file_bytes

        def run() -> builtins.list[GrepMatch]:
            matches: builtins.list[GrepMatch] = []
            with self._root.resolve(path) as r, os_errors(path):
                if r.st is None:
                    raise SandboxNotFoundError(f"no such file or directory: {r.path}")
                targets: Iterator[tuple[builtins.list[str], str, int]]
                if r.name is not None and stat.S_ISREG(r.st.st_mode):
                    targets = iter([(r.parts, r.name, r.dir_fd)])
                else:
                    targets = (
                        ([*r.parts, *rel], rel[-1], parent)
                        for rel, st, parent in _walk_resolved(r)
                        if stat.S_ISREG(st.st_mode) and (wanted is None or wanted.match("/".join(rel)))
                    )
                for parts, name, parent in targets:
                    data = _read_small(parent, name, max_bytes)
                    if data is None or not is_text(data):
                        continue
                    for number, line in search_lines(data, regex, limit - len(matches)):
                        matches.append(GrepMatch(join_path(parts), number, line))
                    if len(matches) >= limit:
                        break
            return matches

        return await self._run(run)

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
        def where() -> str:
            with self._root.resolve(cwd) as r, os_errors(cwd):
                fd = r.open_dir()
                os.close(fd)
                return os.path.join(self._root.host, *r.parts)

        directory = await self._run(where)
        environment = {**self._policy.base_environment(self._root.host), **(env or {})}
        return await run_process(
            argv, cwd=directory, env=environment, timeout=timeout, max_output=max_output, stdin=stdin
        )

    async def aclose(self) -> None:
        """Nothing to release: every operation opens and closes its own descriptors."""


def _entry(path: str, st: os.stat_result) -> Entry:
    mode = st.st_mode
    kind: EntryKind = (
        "dir"
        if stat.S_ISDIR(mode)
        else "file"
        if stat.S_ISREG(mode)
        else "symlink"
        if stat.S_ISLNK(mode)
        else "other"
    )
    return Entry(path, kind, st.st_size if kind != "dir" else 0, st.st_mtime)


def _walk_resolved(r: Resolved) -> Iterator[tuple[list[str], os.stat_result, int]]:
    fd = r.open_dir()
    try:
        yield from _walk(fd, [], [0])
    finally:
        os.close(fd)


def _walk(fd: int, prefix: list[str], seen: list[int]) -> Iterator[tuple[list[str], os.stat_result, int]]:
    """Every entry under directory ``fd`` as (relative parts, lstat, descriptor of the directory
    holding it, valid until the next item), depth first, in name order. Symlinks are yielded, never
    descended; at most ``_MAX_WALK`` entries."""
    try:
        names = sorted(os.listdir(fd))
    except OSError:
        return
    for name in names:
        if seen[0] >= _MAX_WALK:
            return
        seen[0] += 1
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue
        rel = [*prefix, name]
        yield rel, st, fd
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError:  # replaced by a symlink since the stat: not followed
                continue
            try:
                yield from _walk(child, rel, seen)
            finally:
                os.close(child)


def _read_small(dir_fd: int, name: str, limit: int) -> bytes | None:
    """A regular file's bytes if it is at most ``limit`` bytes, else None (skipped by grep)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        os.set_blocking(fd, True)
        return os.read(fd, st.st_size + 1)[:limit]
    except OSError:
        return None
    finally:
        os.close(fd)


def local(
    path: str | os.PathLike[str], *, policy: SandboxPolicy | None = None, create: bool = False
) -> LocalSandbox:
    """A sandbox over the host directory ``path`` (created when ``create``). File paths cannot leave
    it; commands run in it under ``policy`` (default: no shell)."""
    policy = policy or SandboxPolicy()
    if not isinstance(policy, SandboxPolicy):
        raise ConfigError(f"local(policy=...) takes a SandboxPolicy, got {type(policy).__name__}")
    if not isinstance(path, str | os.PathLike) or "\x00" in os.fspath(path):
        raise ConfigError("local(path) takes a directory path")
    root = Path(path)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise ConfigError(f"local({os.fspath(path)!r}): not a directory; create it or pass create=True")
    return LocalSandbox(os.fspath(root), policy)
