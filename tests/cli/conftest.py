"""Helpers for the CLI tests: real subprocesses of the installed ``pyflue`` entry point.

Start-up dominates these tests' time, so projects are shared by the whole session wherever a test
only adds runs to them (each test finds its own runs by id). Slow runs wait on a gate file the test
creates, never on a clock, so no assertion depends on timing.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PROJECTS = HERE / "projects"
_KEYS = ("PYFLUE_MODEL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")
# Generous ceilings so a stuck child fails the test instead of hanging it; never a measurement.
TIMEOUT = 60.0


def pyflue_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m pyflue_cli``."""
    script = Path(sys.executable).with_name("pyflue")
    if script.exists():
        return [str(script)]
    found = shutil.which("pyflue", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "pyflue_cli"]


def child_env(model: str | None = "test", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _KEYS}
    if model is not None:
        env["PYFLUE_MODEL"] = model
    env["COLUMNS"] = "120"
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def jsonl(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> Result:
    proc = subprocess.run(
        [*pyflue_argv(), *args],
        cwd=cwd,
        env=env or child_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    """The error contract: exit ``code``, exactly one line on stderr, no traceback."""
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err, result.err


class Child:
    """A running ``pyflue`` whose stdout is read line by line (JSONL) while it runs."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*pyflue_argv(), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def read_until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"stdout ended first; stderr: {self.finish()[1]}")
            event = json.loads(line)
            self.lines.append(event)
            if predicate(event):
                return event
        raise AssertionError("timed out waiting for an event")

    def finish(self) -> tuple[int, str]:
        """Read the rest through the same buffered file (communicate() would skip what readline()
        already buffered), then the small stderr."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        self.proc.wait(timeout=TIMEOUT)
        self.lines += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@dataclass
class PtyResult:
    code: int
    screen: str
    err: str


def run_in_pty(
    *args: str,
    cwd: Path,
    env: dict[str, str],
    when: tuple[str | Callable[[str], bool], Callable[[], None]] | None = None,
) -> PtyResult:
    """Run ``pyflue`` with stdout on a pseudo-terminal (stderr on a pipe, to check it stays clean).
    ``when=(text, action)`` calls ``action`` once ``text`` has appeared on the terminal (or, when
    ``text`` is a predicate, once it holds for everything the terminal received so far)."""
    master, slave = pty.openpty()
    _set_size(slave, 40, 120)
    proc = subprocess.Popen(
        [*pyflue_argv(), *args],
        cwd=cwd,
        env={**env, "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    chunks: list[bytes] = []
    pending = when
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if pending and _seen(pending[0], b"".join(chunks).decode(errors="replace")):
                    pending[1]()
                    pending = None
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError("the child did not finish in time")
        err = proc.stderr.read().decode() if proc.stderr else ""
        code = proc.wait(timeout=TIMEOUT)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert pending is None, f"{when[0] if when else ''!r} never appeared on the terminal"
    return PtyResult(code, b"".join(chunks).decode(errors="replace"), err)


def _seen(expected: str | Callable[[str], bool], screen: str) -> bool:
    return expected(screen) if callable(expected) else expected in screen


def _set_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def interrupt(child: Child) -> None:
    child.proc.send_signal(signal.SIGINT)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="session")
def lab(workdir: Path) -> Path:
    """The test project (gated, failing, typed and key-needing workflows), shared by the session:
    tests only add runs to it and find their own by id."""
    target = workdir / "lab"
    shutil.copytree(PROJECTS / "lab", target, ignore=shutil.ignore_patterns("__pycache__", ".pyflue"))
    return target


@pytest.fixture(scope="session")
def broken(workdir: Path) -> Path:
    target = workdir / "broken"
    shutil.copytree(PROJECTS / "broken", target, ignore=shutil.ignore_patterns("__pycache__", ".pyflue"))
    return target


@pytest.fixture(scope="session")
def created(workdir: Path) -> Path:
    """A project made by ``pyflue init`` (shared: tests only run it)."""
    result = cli("init", "created", cwd=workdir)
    assert result.code == 0, result.err
    return workdir / "created"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gate"
    yield path
    path.touch()  # never leave a child waiting
