"""The store implementations every contract suite runs against.

A backend is one storage (a dict, a SQLite file, a database) and hands out clients of it: for SQLite
and PostgreSQL each client has its own connection, as another process would. A new store joins every
contract suite by adding its backend class to ``BACKENDS``. PostgreSQL runs on a throwaway cluster
of the test session (tests/postgres/server.py); each backend is a fresh schema in it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import anyio
import pytest

from pyflue.stores.memory import MemoryRunStore, MemorySessionStore
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunStore
from pyflue.stores.sessions import SessionStore
from pyflue.stores.sqlite import SQLiteRunStore, SQLiteSessionStore
from tests.postgres.server import shared_cluster


class Backend(Protocol):
    #: Whether two clients are separate connections that only share the storage.
    shared: bool

    def sessions(self) -> SessionStore:
        """A client of this backend's one session storage."""
        ...

    def runs(self) -> RunStore:
        """A client of this backend's one run storage."""
        ...

    async def aclose(self) -> None:
        """Close every client handed out."""
        ...


class MemoryBackend:
    """One process: every client is the same object."""

    shared = False

    def __init__(self, root: Path) -> None:
        self._sessions = MemorySessionStore()
        self._runs = MemoryRunStore()

    def sessions(self) -> SessionStore:
        return self._sessions

    def runs(self) -> RunStore:
        return self._runs

    async def aclose(self) -> None:
        await self._sessions.aclose()
        await self._runs.aclose()


class SQLiteBackend:
    """One file; each client opens its own connection, as another process would."""

    shared = True

    def __init__(self, root: Path) -> None:
        self.path = root / "pyflue.db"
        self._opened: list[SQLiteSessionStore | SQLiteRunStore] = []

    def sessions(self) -> SessionStore:
        store = SQLiteSessionStore(self.path)
        self._opened.append(store)
        return store

    def runs(self) -> RunStore:
        store = SQLiteRunStore(self.path)
        self._opened.append(store)
        return store

    async def aclose(self) -> None:
        for store in self._opened:
            await store.aclose()


_schemas = itertools.count()


class PostgresBackend:
    """A fresh schema of the test session's cluster; each client opens its own database object
    (its own connections), as another process would."""

    shared = True

    def __init__(self, root: Path, url: str) -> None:
        self.url = url
        self.schema = f"contract_{next(_schemas)}"
        self._opened: list[PostgresDatabase] = []

    def _db(self) -> PostgresDatabase:
        db = PostgresDatabase(self.url, schema=self.schema, pool_size=2)
        self._opened.append(db)
        return db

    def sessions(self) -> SessionStore:
        return self._db().session_store()

    def runs(self) -> RunStore:
        return self._db().run_store()

    async def aclose(self) -> None:
        for db in self._opened:
            await db.aclose()


BACKENDS: dict[str, type[MemoryBackend] | type[SQLiteBackend] | type[PostgresBackend]] = {
    "memory": MemoryBackend,
    "sqlite": SQLiteBackend,
    "postgres": PostgresBackend,
}


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of the test session's throwaway PostgreSQL cluster (started on first use)."""
    return shared_cluster(request.config).url


def _open(name: str, root: Path, request: pytest.FixtureRequest) -> Backend:
    if name == "postgres":
        return PostgresBackend(root, request.getfixturevalue("postgres_url"))
    return BACKENDS[name](root)  # type: ignore[call-arg]


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = _open(request.param, tmp_path, request)
    yield made
    await made.aclose()


@pytest.fixture
def session_store(backend: Backend) -> SessionStore:
    return backend.sessions()


@pytest.fixture
def run_store(backend: Backend) -> RunStore:
    return backend.runs()


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def module_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One backend for every example of a hypothesis test (examples use fresh keys)."""
    made = _open(request.param, tmp_path_factory.mktemp(request.param), request)
    yield made
    anyio.run(made.aclose)
