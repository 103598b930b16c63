"""Fixtures for the sandbox tests: a sandbox root with a secret next to it, outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SECRET = "TOPSECRET-outside-the-sandbox"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    return make_layout(tmp_path)


def make_layout(tmp_path: Path) -> tuple[Path, Path]:
    """``root`` (the sandbox) holds symlinks that point out, in every way one can: relative,
    absolute, to a file, to a directory, and one that stays inside. ``outside`` holds the secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner.txt").write_text("inside\n")
    os.symlink("../outside", root / "rel_out")
    os.symlink(str(outside), root / "abs_out")
    os.symlink(str(outside / "secret.txt"), root / "file_out")
    os.symlink("/etc", root / "etc")
    os.symlink("sub", root / "inner_link")
    os.symlink("sub/../../outside/secret.txt", root / "sneaky")
    return root, outside


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }
