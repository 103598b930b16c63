"""No sandbox path escapes the root: ``..``, absolute paths, symlinks pointing out (made before or by
a command), a symlink swapped in while a path is used, NUL bytes, very long paths — through every
file API of both backends, with hypothesis-generated paths. Each attempt is a typed error or stays
inside; the files outside are never read, written or removed."""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue.errors import ToolError
from pyflue.sandbox import (
    Sandbox,
    SandboxError,
    SandboxNotFoundError,
    SandboxPathError,
    SandboxPolicy,
    local,
    virtual,
)
from pyflue.sandbox.paths import MAX_PATH_BYTES

from .conftest import SECRET, make_layout, snapshot

_components = st.sampled_from(
    ["..", ".", "", "rel_out", "abs_out", "file_out", "etc", "inner_link", "sneaky", "sub", "inner.txt",
     "secret.txt", "passwd", "outside", "new", "x\x00y", "a\nb", "é", "n" * 300]
)  # fmt: skip
paths = st.builds(
    lambda lead, parts: lead + "/".join(parts), st.sampled_from(["", "/", "./", "../", "//"]),
    st.lists(_components, max_size=6),
)  # fmt: skip


def _operations(sandbox: Sandbox, path: str) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: sandbox.read(path),
        lambda: sandbox.write(path, b"overwritten"),
        lambda: sandbox.edit(path, SECRET, "edited"),
        lambda: sandbox.list(path),
        lambda: sandbox.stat(path),
        lambda: sandbox.glob("**", path),
        lambda: sandbox.grep("TOPSECRET", path),
        lambda: sandbox.remove(path, recursive=True),
    ]


def _never_leaks(value: Any) -> None:
    assert SECRET not in repr(value)
    if isinstance(value, list):
        for item in value:
            shown = item if isinstance(item, str) else item.path
            # Listed paths are sandbox paths (a file the attempt itself named "outside" is inside the
            # root); that nothing outside changed or was read is checked by the snapshot and SECRET.
            assert shown.startswith("/") and "/.." not in shown


async def _attempt(sandbox: Sandbox, path: str) -> None:
    for operation in _operations(sandbox, path):
        try:
            value = await operation()
        except SandboxError as exc:  # the only acceptable failure: typed, and a ToolError for models
            assert isinstance(exc, ToolError)
            assert SECRET not in str(exc) and len(str(exc)) < 700
        else:
            _never_leaks(value)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None)
@given(path=paths)
def test_generated_paths_never_leave_the_local_root(backend: str, path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, outside = make_layout(Path(tmp))
        before = snapshot(outside)
        anyio.run(_attempt, local(root), path, backend=backend)
        assert snapshot(outside) == before


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None)
@given(path=paths)
def test_generated_paths_never_fail_untyped_in_the_virtual_sandbox(backend: str, path: str) -> None:
    sandbox = virtual({"sub/inner.txt": "inside\n"})
    anyio.run(_attempt, sandbox, path, backend=backend)


async def test_escapes_are_refused_with_path_errors(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    sandbox = local(root)
    for path in ["..", "../outside/secret.txt", "sub/../../outside/secret.txt", "rel_out/secret.txt",
                 "abs_out/secret.txt", "file_out", "sneaky", "/etc/passwd", "etc/passwd"]:  # fmt: skip
        with pytest.raises(SandboxPathError):
            await sandbox.read(path)
        with pytest.raises(SandboxPathError):
            await sandbox.write(path, b"x")
    assert snapshot(outside) == {"secret.txt": SECRET.encode()}
    # "/etc/passwd" is the sandbox's /etc/passwd: here a symlink out, in the virtual one simply absent
    with pytest.raises(SandboxNotFoundError):
        await virtual().read("/etc/passwd")
    # a symlink that stays inside is followed; removing a symlink removes the link, not its target
    assert await sandbox.read("inner_link/inner.txt") == b"inside\n"
    assert (await sandbox.stat("inner_link")).kind == "dir"
    await sandbox.remove("abs_out")
    assert not (root / "abs_out").exists() and (outside / "secret.txt").exists()


@pytest.mark.parametrize("make", [lambda root: local(root), lambda root: virtual()])
async def test_nul_bytes_control_characters_and_long_paths_are_typed_errors(
    make: Callable[[Path], Sandbox], tmp_path: Path
) -> None:
    sandbox = make(tmp_path)
    for path in ["a\x00b", "a\nb", "x" * 256, "a/" * (MAX_PATH_BYTES // 2 + 1), "\udcff"]:
        for operation in _operations(sandbox, path):
            with pytest.raises(SandboxPathError):
                await operation()
    deep = "/".join(["d"] * 400) + "/f.txt"  # deep but inside the limits: works, one descriptor at a time
    await sandbox.write(deep, b"deep")
    assert await sandbox.read(deep) == b"deep"


async def test_a_symlink_made_by_a_command_is_not_followed_out(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    sandbox = local(root, policy=SandboxPolicy(shell=True, commands={"ln"}))
    result = await sandbox.exec(
        ["ln", "-s", str(outside / "secret.txt"), "made"], timeout=30, max_output=1000
    )
    assert result.exit_code == 0 and (root / "made").is_symlink()
    with pytest.raises(SandboxPathError, match="points outside"):
        await sandbox.read("made")
    with pytest.raises(SandboxPathError):
        await sandbox.write("made", b"clobbered")
    assert (outside / "secret.txt").read_text() == SECRET
    assert [e.kind for e in await sandbox.list("/") if e.name == "made"] == ["symlink"]


def test_a_symlink_swapped_in_during_use_is_never_followed(layout: tuple[Path, Path]) -> None:
    """A thread keeps replacing the directory ``swap`` by a symlink to the outside and back while
    reads and writes go through it: each sees the inside file or fails typed; none reads or writes
    outside."""
    root, outside = layout
    (root / "swap").mkdir()
    (root / "swap" / "secret.txt").write_text("inside")
    sandbox = local(root)
    stop = threading.Event()

    swaps = [0]
    swap = root / "swap"

    def move_away() -> None:  # whatever a concurrent write made at "swap" goes elsewhere, inside
        try:
            os.rename(swap, root / f"junk-{time.monotonic_ns()}")
        except FileNotFoundError:
            pass

    def place(make: Callable[[], None]) -> None:
        while True:
            try:
                return make()
            except OSError:
                move_away()

    def swapper() -> None:
        while not stop.is_set():
            staging = root / f"staging-{swaps[0]}"
            staging.mkdir()
            (staging / "secret.txt").write_text("inside")
            move_away()
            place(lambda: os.symlink(str(outside), swap))
            os.unlink(swap)
            place(functools.partial(os.rename, staging, swap))
            swaps[0] += 1
            time.sleep(0.0002)  # pacing only: leave the directory in place part of the time

    async def use() -> tuple[int, int]:
        seen = refused = 0
        for i in range(400):
            try:
                data = await sandbox.read("swap/secret.txt")
                assert data == b"inside"
                seen += 1
            except SandboxError:
                refused += 1
            try:
                await sandbox.write(f"swap/new{i}.txt", b"w")
            except SandboxError:
                refused += 1
        return seen, refused

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        seen, refused = anyio.run(use)
    finally:
        stop.set()
        thread.join()
    assert seen + refused >= 400 and swaps[0] > 0
    assert snapshot(outside) == {"secret.txt": SECRET.encode()}
