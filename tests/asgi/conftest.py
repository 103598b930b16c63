"""Fixtures: a project written to a temporary directory, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyflue_asgi import create_app
from tests.asgi._live import make_project, serve


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("project"))
    yield root


@pytest.fixture(scope="module")
def shared_url(shared_project: Path) -> Iterator[str]:
    """One server for the tests that only read, or write runs of their own."""
    with serve(create_app(shared_project, heartbeat=0.2, poll_interval=0.02)) as url:
        yield url


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = make_project(tmp_path / "project")
    yield root
