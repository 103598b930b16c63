"""Running one command as a subprocess that cannot outlive its call.

The command starts in a new session (so a new process group); when it exits, times out or the
call is cancelled, the whole group is killed with ``SIGKILL``, so background jobs and children it
spawned do not keep running (or keep its output pipes open). A child that starts its own session
(``setsid``) leaves the group and is not reached: only a container or a cgroup confines that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .errors import SandboxError
from .protocol import ExecResult

__all__ = ["run_process"]

_CHUNK = 65536


class _Capture:
    """The first and last ``limit // 2`` bytes of a stream, and how many bytes were cut between."""

    __slots__ = ("cut", "head", "limit", "tail")

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.cut = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.limit // 2
            if excess > 0:
                del self.tail[:excess]
                self.cut += excess

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        if not self.cut:
            return head + self.tail.decode("utf-8", "replace")
        return f"{head}\n[... {self.cut} bytes of output cut ...]\n{self.tail.decode('utf-8', 'replace')}"


async def _drain(stream: ByteReceiveStream | None, capture: _Capture) -> None:
    if stream is None:
        return
    async for chunk in stream:
        capture.add(chunk)


async def _feed(stream: ByteSendStream | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        for start in range(0, len(data), _CHUNK):
            await stream.send(data[start : start + _CHUNK])
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError):
        pass  # the command stopped reading; its exit code says what it made of that
    finally:
        await stream.aclose()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_process(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
    stdin: bytes | None = None,
    command: str | None = None,
) -> ExecResult:
    """Run ``argv`` with exactly ``env`` in ``cwd``; see the module docstring for its lifetime. A
    program that cannot be found or started gives exit code 127 / 126 and a message on stderr, as
    a shell would."""
    shown = command if command is not None else " ".join(argv)
    started = time.perf_counter()
    try:
        process = await anyio.open_process(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except FileNotFoundError:
        return ExecResult(shown, 127, "", f"{argv[0]}: command not found\n", _ms(started))
    except PermissionError:
        return ExecResult(shown, 126, "", f"{argv[0]}: permission denied\n", _ms(started))
    except OSError as exc:
        raise SandboxError(f"could not start {argv[0]!r}: {exc.strerror or exc}") from None
    out, err = _Capture(max_output), _Capture(max_output)
    pgid = process.pid  # start_new_session: the child leads its own group
    timed_out = False
    try:
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_drain, process.stdout, out)
                tasks.start_soon(_drain, process.stderr, err)
                if stdin is not None:
                    tasks.start_soon(_feed, process.stdin, stdin)
                await process.wait()
                # background jobs still holding the pipes open go with their leader
                _kill_group(pgid)
        timed_out = scope.cancelled_caught
    finally:
        _kill_group(pgid)
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
    code = None if timed_out else process.returncode
    return ExecResult(shown, code, out.text(), err.text(), _ms(started), timed_out, bool(out.cut or err.cut))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
