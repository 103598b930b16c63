"""The store implementations every contract suite runs against.

A backend is one storage (a dict, a SQLite file, a database) and hands out clients of it: for SQLite
each client has its own connection, as another process would. A new store (PostgreSQL) joins every
contract suite by adding its backend class to ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import anyio
import pytest

from pyflue.stores.memory import MemoryRunStore, MemorySessionStore
from pyflue.stores.runs import RunStore
from pyflue.stores.sessions import SessionStore
from pyflue.stores.sqlite import SQLiteRunStore, SQLiteSessionStore


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


BACKENDS: dict[str, type[MemoryBackend] | type[SQLiteBackend]] = {
    "memory": MemoryBackend,
    "sqlite": SQLiteBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
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
    made = BACKENDS[request.param](tmp_path_factory.mktemp(request.param))
    yield made
    anyio.run(made.aclose)
