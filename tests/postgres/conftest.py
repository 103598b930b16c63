"""Fixtures of the PostgreSQL tests: the test session's throwaway cluster, and fresh schemas in it."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable

import pytest

from pyflue.stores.postgres import PostgresDatabase
from tests.postgres.server import shared_cluster

_schemas = itertools.count()


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of the test session's throwaway PostgreSQL cluster (started on first use)."""
    return shared_cluster(request.config).url


@pytest.fixture
def new_schema() -> Callable[[], str]:
    """Names of schemas no other test uses."""
    return lambda: f"t_{os.getpid()}_{next(_schemas)}"


@pytest.fixture
async def database(postgres_url: str, new_schema: Callable[[], str]) -> AsyncIterator[PostgresDatabase]:
    """A database object on a fresh schema, closed after the test."""
    async with PostgresDatabase(postgres_url, schema=new_schema()) as db:
        yield db
