"""Fixtures of the resumed-run tests: the provider wire server, hosts A and B, and the record of an
uninterrupted run to compare resumed runs with."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres.server import shared_cluster
from tests.wire import _free_port

from ._hosts import Hosts
from ._provider import Provider, serving


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    with serving(_free_port()) as made:
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
def hosts(request: pytest.FixtureRequest, tmp_path: Path, provider: Provider) -> Callable[[str], Hosts]:
    def make(name: str) -> Hosts:
        database = None
        if request.param == "postgres":
            url = shared_cluster(request.config).url
            database = (url, f"resume_{os.getpid()}_{name}_{len(provider.requests)}")
        return Hosts(tmp_path / name, provider, database)

    return make


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> tuple[dict[str, Any], int]:
    """An uninterrupted run on SQLite: its record and how many model requests it made."""
    hosts = Hosts(tmp_path_factory.mktemp("base"), provider, None)
    before = len(provider.requests)
    record = hosts.finish(hosts.start("run", hosts.a, "run-base"))
    assert record["status"] == "completed", record
    assert hosts.lines("side_effects") == ["book hotel"] and hosts.lines("verifies") == ["hotel"]
    assert record["result"]["first"] == "done: ref-hotel (3 results)"
    return record, len(provider.requests) - before
