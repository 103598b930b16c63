"""Race-safe path resolution under a root directory, one component at a time (``openat`` style).

Every component is looked up relative to an open file descriptor of its parent directory, and
directories are opened with ``O_NOFOLLOW | O_DIRECTORY``: nothing is ever resolved by the kernel
from a whole path string. Symlinks are read (``readlinkat``) and followed by this code only when
their target stays inside the root; ``..`` goes up only while there is a parent inside the root.
A symlink swapped in for a directory or file between the check and the open makes the open fail
(``ELOOP``/``ENOTDIR``), which is reported as :class:`SandboxPathError`, never followed.

What is *not* guaranteed: a directory that a concurrent process moves out of the root while a
descriptor to it is held is still used (that process could already write outside the root).

All functions here are synchronous and block: callers run them in worker threads.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import SandboxError, SandboxNotFoundError, SandboxPathError
from .paths import join_path, split_path

__all__ = ["DIR_FLAGS", "Resolved", "Root", "os_errors"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Symlinks followed in one resolution, as Linux allows (``MAXSYMLINKS``).
_MAX_HOPS = 40


@dataclass(slots=True)
class Resolved:
    """A resolved path: ``name`` inside the open directory ``dir_fd`` (None when the path is the root
    itself, then ``dir_fd`` is the root), the resolved sandbox ``parts``, and ``st``, the
    ``lstat`` of the entry (None when it does not exist). Owns ``dir_fd``: use it as a context
    manager."""

    dir_fd: int
    name: str | None
    parts: list[str]
    st: os.stat_result | None

    @property
    def path(self) -> str:
        return join_path(self.parts)

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.dir_fd)

    def open_dir(self) -> int:
        """A new descriptor of the resolved directory (it must be one)."""
        if self.name is None:
            return os.dup(self.dir_fd)
        if self.st is None:
            raise SandboxNotFoundError(f"no such directory: {self.path}")
        if not stat.S_ISDIR(self.st.st_mode):
            raise SandboxError(f"{self.path} is not a directory")
        return os.open(self.name, DIR_FLAGS, dir_fd=self.dir_fd)


class Root:
    """A host directory that sandbox paths resolve under."""

    __slots__ = ("host",)

    def __init__(self, host: str) -> None:
        self.host = os.path.realpath(host)

    def open(self) -> int:
        return os.open(self.host, DIR_FLAGS)

    def resolve(self, path: str, *, follow_last: bool = True, create_parents: bool = False) -> Resolved:
        """Resolve sandbox ``path``. Symlinks in the middle are always followed (inside the root);
        the last one only with ``follow_last``. Missing directories are created with
        ``create_parents``; a missing last component is returned with ``st=None``."""
        pending = list(reversed(split_path(path)))
        parts: list[str] = []
        fd = self.open()
        hops = 0
        try:
            with os_errors(path):
                while pending:
                    name = pending.pop()
                    if name == "..":
                        if not parts:
                            raise SandboxPathError(f"{_short(path)} goes above the sandbox root")
                        fd = _replace(fd, os.open("..", DIR_FLAGS, dir_fd=fd))
                        parts.pop()
                        continue
                    last = not pending
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        if last:
                            return Resolved(fd, name, [*parts, name], None)
                        if not create_parents:
                            raise SandboxNotFoundError(
                                f"no such directory: {join_path([*parts, name])}"
                            ) from None
                        try:
                            os.mkdir(name, 0o777, dir_fd=fd)
                        except FileExistsError:
                            pass
                        pending.append(name)
                        continue
                    if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                        hops += 1
                        if hops > _MAX_HOPS:
                            raise SandboxPathError(f"{_short(path)}: too many levels of symbolic links")
                        target = os.readlink(name, dir_fd=fd)
                        if target.startswith("/"):
                            inside = self._inside(target, [*parts, name])
                            fd = _replace(fd, self.open())
                            parts = []
                            pending.extend(reversed(inside))
                        else:
                            pending.extend(reversed(_link_parts(target, [*parts, name])))
                        continue
                    if last:
                        return Resolved(fd, name, [*parts, name], st)
                    if not stat.S_ISDIR(st.st_mode):
                        raise SandboxError(f"{join_path([*parts, name])} is not a directory")
                    fd = _replace(fd, os.open(name, DIR_FLAGS, dir_fd=fd))
                    parts.append(name)
                if not parts:
                    return Resolved(fd, None, [], os.fstat(fd))
                # the path ended in '..': name the directory reached from its parent
                name = parts[-1]
                fd = _replace(fd, os.open("..", DIR_FLAGS, dir_fd=fd))
                return Resolved(fd, name, parts, os.stat(name, dir_fd=fd, follow_symlinks=False))
        except BaseException:
            os.close(fd)
            raise

    def _inside(self, target: str, link: list[str]) -> list[str]:
        """The sandbox components of an absolute symlink target, which must lie under the root."""
        host = self.host.rstrip("/") + "/"
        if target != self.host and not target.startswith(host):
            raise SandboxPathError(f"the symlink {join_path(link)} points outside the sandbox")
        return split_path(target[len(host) :] if target != self.host else "")


def _link_parts(target: str, link: list[str]) -> list[str]:
    try:
        return split_path(target)
    except SandboxPathError:
        raise SandboxPathError(
            f"the symlink {join_path(link)} has a target that is not a usable path"
        ) from None


def _replace(old: int, new: int) -> int:
    os.close(old)
    return new


def _short(path: str) -> str:
    return repr(path) if len(path) <= 80 else repr(path[:60] + "...")


@contextmanager
def os_errors(path: str) -> Iterator[None]:
    """Turn ``OSError`` into the sandbox's typed errors, naming the sandbox path, not a host path."""
    try:
        yield
    except OSError as exc:
        shown = _short(path)
        code = exc.errno
        if code == errno.ENOENT:
            raise SandboxNotFoundError(f"no such file or directory: {shown}") from None
        if code in (errno.ELOOP, errno.EXDEV):
            raise SandboxPathError(
                f"{shown} changed while it was being opened (a symlink appeared); it was not followed"
            ) from None
        if code == errno.ENOTDIR:
            raise SandboxError(f"{shown}: a component of the path is not a directory") from None
        if code == errno.ENAMETOOLONG:
            raise SandboxPathError(f"{shown}: the path is too long") from None
        if code == errno.EISDIR:
            raise SandboxError(f"{shown} is a directory") from None
        if code in (errno.EACCES, errno.EPERM):
            raise SandboxError(f"{shown}: permission denied") from None
        if code == errno.ENOTEMPTY:
            raise SandboxError(f"{shown} is not empty; pass recursive=True to remove it all") from None
        raise SandboxError(f"{shown}: {exc.strerror or type(exc).__name__}") from None
