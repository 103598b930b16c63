"""Process liveness: who owns a piece of work, and whether that owner may still be running.

A store records the owner of work in progress (a running workflow run) as ``(pid, host, start)``:
the process id, the host name and the process's start time. The start time tells a pid the kernel
reused from the process that recorded the work. Only processes of this host can be checked; work
owned elsewhere is presumed alive (whoever shares a database across hosts has a server with leases,
not pids).

Nothing here is cached: a forked child has its own pid and start time, and ``/proc`` reads are
cheap next to the store writes they accompany. Call these from a worker thread (they read files).
"""

from __future__ import annotations

import os
import socket
import sys
from functools import cache

__all__ = ["hostname", "own_start", "owner_alive"]


@cache
def hostname() -> str:
    """This host's name, as owners are recorded with (read once: every operation names its owner)."""
    return socket.gethostname()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of a process from ``/proc`` (Linux), or ``None`` where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def own_start() -> str | None:
    """This process's start time (an opaque token), or ``None`` where the platform has none."""
    stat = _proc_stat(os.getpid())
    return stat[1] if stat is not None else None


def owner_alive(pid: int | None, host: str | None, start: str | None) -> bool:
    """Whether the process ``pid`` on ``host`` that started at ``start`` may still be running.

    ``False`` only when this host can prove it gone: no such pid, a zombie, or a pid that now belongs
    to a process with another start time. Unknown owners (no pid, another host) count as alive.
    """
    if pid is None or host != hostname():
        return True
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        if state == "Z" or (start is not None and started != start):
            return False
    return True


def _windows_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return bool(code.value == 259)  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
