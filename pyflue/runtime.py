"""The runtime: the process's shared resources, with one owner and one lifetime.

What would otherwise be scattered module globals lives here: the default session store, one
SQLite database object per file (one connection each, shared by that file's session and run
stores), the live histories of stored sessions, the controls of running workflow runs, the pooled
HTTP clients of the model providers, and the task group that background work (a directly iterated
stream) runs in. Servers and workers open one for their lifespan::

    async with Runtime() as rt:
        ...  # agents, workflows, streams started here use rt's resources
    # closed: background work cancelled, HTTP clients and databases closed

Code that opens none (a script calling ``init`` or ``Project.run``) uses the implicit default
runtime, created on first use and kept for the process, so the seed's code runs unchanged. Inside
``async with Runtime()`` (and the tasks started there) :func:`current_runtime` is that runtime.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import RunVar

from .errors import ConfigError
from .history import History

if TYPE_CHECKING:
    from .mcp.servers import MCPServers
    from .models.clients import ClientPool
    from .stores.postgres import PostgresDatabase
from .stores.dispatches import DispatchStore
from .stores.memory import MemoryRunStore, MemorySessionStore
from .stores.runs import RunStore
from .stores.sessions import SessionKey, SessionStore
from .stores.sqlite import SQLiteDatabase, SQLiteDispatchStore, SQLiteRunStore, SQLiteSessionStore

__all__ = ["Runtime", "current_runtime"]


def _check_run_lease(value: float, name: str, *, shown: str | None = None) -> float:
    """``value`` if it is a positive finite number of seconds, else a ``ConfigError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        given = repr(value) if shown is None else repr(shown)
        raise ConfigError(f"{name} must be a positive, finite number of seconds (e.g. 15), got {given[:60]}")
    return float(value)


class RunControl(Protocol):
    """A running workflow run as the runtime sees it: something that can be cancelled."""

    def cancel(self, reason: str, kind: str) -> None: ...


class Runtime:
    """Owner of the shared resources; ``aclose()`` (or leaving ``async with``) releases them.

    ``session_store`` is the store of harnesses made without one and without a project (default:
    in memory, for this runtime's lifetime).
    """

    def __init__(
        self,
        *,
        session_store: SessionStore | None = None,
        database_url: str | None = None,
        session_lease_seconds: float = 10.0,
        run_lease_seconds: float | None = None,
    ) -> None:
        if not session_lease_seconds > 0:
            raise ConfigError(f"session_lease_seconds must be positive, got {session_lease_seconds!r}")
        if run_lease_seconds is not None:
            _check_run_lease(run_lease_seconds, "run_lease_seconds")
        self._session_store = session_store
        #: How long a session's turn stays taken after the process holding it died (renewed every
        #: third of it while the operation runs).
        self.session_lease_seconds = session_lease_seconds
        #: How long a PostgreSQL run whose owner stopped heartbeating stays ``running`` before it is
        #: ``interrupted`` (default: ``PYFLUE_RUN_LEASE_SECONDS``, else 15 s; read with the URL).
        self.run_lease_seconds = run_lease_seconds
        #: A ``postgresql://`` URL: projects keep sessions, runs and dispatches there instead of
        #: their SQLite file (default: ``PYFLUE_DATABASE_URL``, read when a store is first asked for).
        self.database_url = database_url
        self._postgres: dict[str, PostgresDatabase] = {}
        self._postgres_stores: dict[tuple[str, str], Any] = {}
        self._run_store: RunStore | None = None
        # Held weakly: a database (and its connection) lives as long as a store or a harness uses it,
        # so a process touching many projects does not keep every file open; aclose() closes the rest.
        self._databases: weakref.WeakValueDictionary[Path, SQLiteDatabase] = weakref.WeakValueDictionary()
        #: Absolute paths as given, resolved (see _file_key).
        self._resolved: dict[Path, Path] = {}
        self._session_stores: weakref.WeakValueDictionary[Path, SQLiteSessionStore] = (
            weakref.WeakValueDictionary()
        )
        self._run_stores: weakref.WeakValueDictionary[Path, SQLiteRunStore] = weakref.WeakValueDictionary()
        self._dispatch_stores: weakref.WeakValueDictionary[Path, SQLiteDispatchStore] = (
            weakref.WeakValueDictionary()
        )
        # Per store object, then per session key: the one live History of each stored session.
        self._histories: weakref.WeakKeyDictionary[Any, weakref.WeakValueDictionary[SessionKey, History]] = (
            weakref.WeakKeyDictionary()
        )
        self.runs: dict[str, RunControl] = {}
        self._group: TaskGroup | None = None
        self._token: Token[Runtime | None] | None = None
        self._activation = ExitStack()
        #: The model providers' HTTP clients while the runtime is open (``async with``); a runtime
        #: never entered leaves providers on the event loop's implicit pool.
        self.http: ClientPool | None = None
        self._mcp: MCPServers | None = None
        self._closed = False
        self._closing = False

    # -- stores ------------------------------------------------------------------------------------

    @property
    def session_store(self) -> SessionStore:
        """The store of harnesses made without a store or a project."""
        if self._session_store is None:
            self._session_store = MemorySessionStore()
        return self._session_store

    @property
    def run_store(self) -> RunStore:
        """The run store of workflows run without a project store (in memory)."""
        if self._run_store is None:
            self._run_store = MemoryRunStore()
        return self._run_store

    def _file_key(self, path: str | Path) -> Path:
        """The resolved path that keys a SQLite file's objects. Resolving costs ``lstat`` calls (IO on
        the event loop), so an absolute path is resolved once; a relative one each time (it depends
        on the working directory)."""
        given = Path(path)
        if not given.is_absolute():
            return given.resolve()
        key = self._resolved.get(given)
        if key is None:
            key = self._resolved[given] = given.resolve()
        return key

    def database(self, path: str | Path) -> SQLiteDatabase:
        """The one database object (one connection) of the SQLite file at ``path``."""
        self._check_open()
        key = self._file_key(path)
        db = self._databases.get(key)
        if db is None:
            db = self._databases[key] = SQLiteDatabase(key)
        return db

    # -- the stores of a project: its SQLite file, or the PostgreSQL database when one is set ------

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL database projects use, or None (their SQLite files)."""
        return self.database_url or os.environ.get("PYFLUE_DATABASE_URL") or None

    @property
    def run_lease(self) -> float | None:
        """The lease of PostgreSQL runs: ``run_lease_seconds``, else ``PYFLUE_RUN_LEASE_SECONDS``,
        else None (the run store's default, 15 s)."""
        if self.run_lease_seconds is not None:
            return self.run_lease_seconds
        raw = os.environ.get("PYFLUE_RUN_LEASE_SECONDS", "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        return _check_run_lease(value, "PYFLUE_RUN_LEASE_SECONDS", shown=raw[:40])

    def postgres(self, url: str) -> PostgresDatabase:
        """The one database object (one connection pool) of ``url`` (extra ``postgres``)."""
        self._check_open()
        db = self._postgres.get(url)
        if db is None:
            # Imported here: psycopg is an optional extra, loaded only by those who use it.
            from .stores.postgres import PostgresDatabase

            db = self._postgres[url] = PostgresDatabase(url)
        return db

    def _from_postgres(self, kind: str) -> Any:
        url = self.postgres_url
        if url is None:
            return None
        store = self._postgres_stores.get((url, kind))
        if store is None:
            db = self.postgres(url)
            made: Any = (
                db.session_store()
                if kind == "session"
                else db.run_store(run_lease=self.run_lease)
                if kind == "run"
                else db.dispatch_store()
            )
            store = self._postgres_stores[(url, kind)] = made
        return store

    def session_store_for(self, sqlite_path: str | Path) -> SessionStore:
        """A project's session store: PostgreSQL when a database URL is set, else its SQLite file."""
        store: SessionStore | None = self._from_postgres("session")
        return store if store is not None else self.sqlite_session_store(sqlite_path)

    def run_store_for(self, sqlite_path: str | Path) -> RunStore:
        """A project's run store: PostgreSQL when a database URL is set, else its SQLite file."""
        store: RunStore | None = self._from_postgres("run")
        return store if store is not None else self.sqlite_run_store(sqlite_path)

    def dispatch_store_for(self, sqlite_path: str | Path) -> DispatchStore:
        """A project's dispatch store: PostgreSQL when a database URL is set, else its SQLite file."""
        store: DispatchStore | None = self._from_postgres("dispatch")
        return store if store is not None else self.sqlite_dispatch_store(sqlite_path)

    def sqlite_session_store(self, path: str | Path) -> SQLiteSessionStore:
        """The session store of the SQLite file at ``path`` (one object per file, so every harness
        on that file shares live histories and turns)."""
        key = self._file_key(path)
        store = self._session_stores.get(key)
        if store is None:
            store = self._session_stores[key] = SQLiteSessionStore(self.database(key))
        return store

    def sqlite_run_store(self, path: str | Path) -> SQLiteRunStore:
        """The run store of the SQLite file at ``path``."""
        key = self._file_key(path)
        store = self._run_stores.get(key)
        if store is None:
            store = self._run_stores[key] = SQLiteRunStore(self.database(key))
        return store

    def sqlite_dispatch_store(self, path: str | Path) -> SQLiteDispatchStore:
        """The dispatch store of the SQLite file at ``path``."""
        key = self._file_key(path)
        store = self._dispatch_stores.get(key)
        if store is None:
            store = self._dispatch_stores[key] = SQLiteDispatchStore(self.database(key))
        return store

    # -- live histories ----------------------------------------------------------------------------

    async def history(self, store: SessionStore, key: SessionKey) -> History:
        """The live history of a stored session, loaded from ``store`` on first use; shared while
        any session object holds it."""
        live = self._histories.get(store)
        if live is None:
            live = self._histories[store] = weakref.WeakValueDictionary()
        history = live.get(key)
        if history is None:
            loaded = await store.load(key)
            history = live.get(key)  # another task may have loaded it meanwhile
            if history is None:
                history = live[key] = History(store, key, loaded)
        return history

    # -- shared connections ------------------------------------------------------------------------

    def mcp(self) -> MCPServers:
        """The MCP connections of this runtime, shared by every agent instance in it (one server
        process or HTTP session per distinct spec), run in this runtime's task group and stopped
        when it closes."""
        self._check_open()
        if self._mcp is None:
            # Imported here: the MCP machinery loads with the first agent that names a server.
            from .mcp.servers import MCPServers

            self._mcp = MCPServers(spawn=self.start_soon)
        return self._mcp

    async def _close_mcp(self) -> None:
        servers, self._mcp = self._mcp, None
        if servers is not None:
            with anyio.CancelScope(shield=True):
                await servers.aclose()

    # -- background work ---------------------------------------------------------------------------

    async def start_soon(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``function`` in this runtime's task group: the one entered with ``async with``, or
        for a runtime never entered (the implicit default), a task group per event loop that lives
        as long as the loop. Work started here is cancelled when the runtime closes."""
        self._check_open()
        group = self._group if self._group is not None else await _loop_group()
        group.start_soon(function)

    # -- lifetime ----------------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Whether this runtime's owner has begun shutting down (:meth:`mark_closing`, or leaving
        ``async with``, or :meth:`aclose`). A workflow run cancelled from outside once this is true
        was cut short by the process, not by a request: it is recorded ``interrupted``, not
        ``cancelled`` (docs/resumable.md)."""
        return self._closing or self._closed

    def mark_closing(self) -> None:
        """Say that the owner is shutting down, before it cancels the work it runs in this
        runtime (a server calls it when its lifespan ends). Idempotent; nothing else changes."""
        self._closing = True

    @contextmanager
    def activate(self) -> Iterator[Runtime]:
        """Make this (open) runtime the current one in the block and the tasks started inside it.
        ``async with`` does this for its own block; a server whose requests run in tasks that did
        not inherit its lifespan's context activates it around each request."""
        self._check_open()
        token = _current.set(self)
        try:
            with ExitStack() as stack:
                if self.http is not None:
                    from .models.clients import use_pool

                    stack.enter_context(use_pool(self.http))
                yield self
        finally:
            _current.reset(token)

    async def __aenter__(self) -> Runtime:
        self._check_open()
        if self._group is not None:
            raise ConfigError("this Runtime is already open; open a Runtime once")
        # Imported here: httpx loads with the first runtime opened or model called, not with pyflue.
        from .models.clients import ClientPool, use_pool

        self.http = ClientPool()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._token = _current.set(self)
        self._activation.enter_context(use_pool(self.http))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._closing = True
        self._activation.close()
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        await self._close_mcp()  # servers stop cleanly before the group running them is cancelled
        group, self._group = self._group, None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                return await group.__aexit__(exc_type, exc, tb)
            return None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release everything: background work is cancelled, databases are closed. Idempotent."""
        if self._closed:
            return
        self._closing = self._closed = True
        await self._close_mcp()
        if self._group is not None:
            self._group.cancel_scope.cancel()
        databases = list(self._databases.values())
        self._databases.clear()
        self._session_stores.clear()
        self._run_stores.clear()
        self._dispatch_stores.clear()
        self._histories.clear()
        postgres = list(self._postgres.values())
        self._postgres.clear()
        self._postgres_stores.clear()
        with anyio.CancelScope(shield=True):
            if self.http is not None:
                await self.http.aclose()
            for database in postgres:
                await database.aclose()
            for db in databases:
                await db.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this Runtime is closed; open a new one")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Runtime {state}, {len(self._databases)} database(s)>"


_current: ContextVar[Runtime | None] = ContextVar("pyflue_runtime", default=None)


class _Default:
    """Holder of the implicit default runtime (the one piece of process state PyFlue keeps, so that
    code which opens no runtime still works)."""

    runtime: Runtime | None = None


def current_runtime() -> Runtime:
    """The runtime of the calling code: the innermost ``async with Runtime()``, else the implicit
    default one."""
    runtime = _current.get()
    if runtime is not None:
        return runtime
    if _Default.runtime is None or _Default.runtime._closed:
        _Default.runtime = Runtime()
    return _Default.runtime


_groups: RunVar[anyio.Event | TaskGroup] = RunVar("pyflue_background")


async def _loop_group() -> TaskGroup:
    """The task group of the running event loop for runtimes never entered, opened on first use by
    a task that holds it open until the loop ends (the loop cancels it then)."""
    try:
        found = _groups.get()
    except LookupError:
        found = anyio.Event()
        _groups.set(found)
        _hold_open(found)
    if isinstance(found, anyio.Event):
        await found.wait()
        found = _groups.get()
    assert not isinstance(found, anyio.Event)
    return found


def _hold_open(opened: anyio.Event) -> None:
    async def hold() -> None:
        async with anyio.create_task_group() as group:
            _groups.set(group)
            opened.set()
            await anyio.sleep_forever()

    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        import trio

        trio.lowlevel.spawn_system_task(hold)
        return
    task = loop.create_task(hold())
    _Holders.tasks.add(task)
    task.add_done_callback(_Holders.tasks.discard)


class _Holders:
    """Strong references to the holder tasks (asyncio keeps only weak ones)."""

    tasks: set[Any] = set()
