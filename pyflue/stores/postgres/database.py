"""One PostgreSQL database (a schema in it): a connection pool used from worker threads, the schema
migrations, and the listening connection that wakes followers.

psycopg's async API runs on asyncio only; PyFlue runs on asyncio and trio. So every statement runs with
psycopg's blocking API in an anyio worker thread, on a connection of a ``psycopg_pool.ConnectionPool``:
the same code serves both loops, and the event loop never blocks on the network. The cost of the hop is
measured in docs/decisions/0021-postgres.md.
"""

from __future__ import annotations

import hashlib
import threading
import time
import types
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from ...errors import ConfigError, PyFlueError, StoreError

try:
    import psycopg
    import psycopg.conninfo
    import psycopg.errors
    from psycopg import sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ConfigError("PostgreSQL storage needs the postgres extra: pip install 'pyflue[postgres]'") from exc

from .dispatches import PostgresDispatchStore
from .interface import Conn
from .notify import Notifier, Watch
from .runs import DEFAULT_RUN_LEASE, PostgresRunStore
from .schema import MIGRATIONS, SCHEMA_VERSION, stable_hash
from .sessions import PostgresSessionStore

__all__ = ["PostgresDatabase"]

T = TypeVar("T")

#: Transactions that PostgreSQL aborted to break a deadlock or a serialisation conflict are retried
#: this many times in all.
_ATTEMPTS = 5
#: First key of the advisory lock that serialises schema upgrades (the second is the schema's).
_UPGRADE_LOCK = 0x50F1


class PostgresDatabase:
    """A PostgreSQL database shared by the stores of every process and host that opens it.

    ``url`` is a libpq connection URL (``postgresql://user:password@host:5432/dbname``); ``schema``
    the schema holding PyFlue's tables (created if missing), so several deployments, or tests, can
    share one database. Connections open on first use (at most ``pool_size`` at once), and then the
    schema is brought to this code's version (:meth:`upgrade`) unless ``auto_upgrade=False``, in
    which case an outdated schema is an error that says to upgrade it.

    Stores of this database: :meth:`session_store`, :meth:`run_store`, :meth:`dispatch_store`; they
    share its pool and its listening connection, and closing the database (``aclose()`` or
    ``async with``) closes them all.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "pyflue",
        pool_size: int = 10,
        auto_upgrade: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("a PostgreSQL URL starts with postgresql:// (postgresql://user@host:5432/db)")
        try:
            parts = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"invalid PostgreSQL URL: {str(exc).strip()[:200]}") from None
        if not schema or len(schema.encode()) > 63 or "\x00" in schema:
            raise ConfigError("schema must be a PostgreSQL identifier of 1 to 63 bytes")
        if pool_size < 1:
            raise ConfigError(f"pool_size must be at least 1, got {pool_size}")
        self.url = url
        self.schema = schema
        self.where = (
            f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
        )
        #: The NOTIFY channel of this database's schema.
        self.channel = "pyflue_" + hashlib.md5(schema.encode()).hexdigest()[:16]
        self._pool_size = pool_size
        self._auto_upgrade = auto_upgrade
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._ready = False
        self._closed = False
        self.notifier = Notifier(self._listen_connection, self.channel)

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r}, schema={self.schema!r})"

    # -- stores --------------------------------------------------------------------------------------

    def session_store(self) -> PostgresSessionStore:
        """The session store of this database."""
        return PostgresSessionStore(self)

    def run_store(self, *, run_lease: float | None = None) -> PostgresRunStore:
        """The run store of this database; a run whose owner stopped heartbeating for ``run_lease``
        seconds (None: 15) is ``interrupted``."""
        return PostgresRunStore(self, run_lease=DEFAULT_RUN_LEASE if run_lease is None else run_lease)

    def dispatch_store(self, *, clock: Callable[[], float] | None = None) -> PostgresDispatchStore:
        """The dispatch store of this database (``clock``: see :class:`PostgresDispatchStore`)."""
        return PostgresDispatchStore(self, clock=clock)

    # -- connections ---------------------------------------------------------------------------------

    def _configure(self, conn: Conn) -> None:
        path = sql.Identifier(self.schema).as_string(conn)
        conn.execute("SELECT set_config('search_path', %s, false)", (path,))
        conn.commit()

    def _listen_connection(self) -> Conn:
        return psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
        )

    def _open(self, *, check: bool = True) -> ConnectionPool[Conn]:
        """The pool, opened on first use; with ``check``, the schema upgraded (or checked) first."""
        with self._lock:
            if self._closed:
                raise StoreError(f"PostgreSQL database {self.where} is closed; open a new PostgresDatabase")
            timeout = max(1, round(self._connect_timeout))
            if self._pool is None:
                # One direct connection first: a wrong URL, password or database fails now, with
                # the server's own words, instead of after the pool's timeout.
                with psycopg.connect(self.url, connect_timeout=timeout) as conn:
                    self._configure(conn)
                    if check:
                        self._migrate(conn, apply=self._auto_upgrade)
                        self._ready = True
                pool: ConnectionPool[Conn] = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    configure=self._configure,
                    kwargs={"connect_timeout": timeout},
                    timeout=max(self._connect_timeout, 30.0),
                    name=f"pyflue-{self.channel}",
                )
                try:
                    pool.open(wait=True, timeout=self._connect_timeout)
                except PoolTimeout:
                    pool.close()
                    raise StoreError(
                        f"cannot connect to PostgreSQL at {self.where} within {self._connect_timeout:g} s; "
                        "check the URL (PYFLUE_DATABASE_URL) and that the server accepts connections"
                    ) from None
                self._pool = pool
            if check and not self._ready:
                with self._pool.connection() as conn:
                    self._migrate(conn, apply=self._auto_upgrade)
                self._ready = True
            return self._pool

    def _migrate(self, conn: Conn, *, apply: bool) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION` (``apply``) or check that it is; the version."""
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_UPGRADE_LOCK, stable_hash(self.schema) >> 32))
        if apply:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        current = 0
        if exists and exists[0]:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the PyFlue schema {self.schema!r} at {self.where} is at version {current}, newer than "
                f"this PyFlue knows ({SCHEMA_VERSION}); upgrade pyflue on this host"
            )
        if current < SCHEMA_VERSION and not apply:
            raise StoreError(
                f"the PyFlue schema {self.schema!r} at {self.where} is at version {current}, this PyFlue "
                f"needs {SCHEMA_VERSION}; run `pyflue db upgrade` (or open the database with auto_upgrade)"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1].encode())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return SCHEMA_VERSION

    # -- transactions --------------------------------------------------------------------------------

    def call(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn(connection)`` in one transaction in the calling thread: committed when it
        returns, rolled back when it raises. A transaction PostgreSQL aborted for a deadlock or a
        serialisation conflict is run again; other database errors become a ``StoreError`` saying
        what went wrong."""
        pool = self._run_setup()
        for attempt in range(_ATTEMPTS):
            try:
                with pool.connection() as conn:
                    return fn(conn)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                if attempt == _ATTEMPTS - 1:
                    raise StoreError(
                        f"PostgreSQL at {self.where} kept aborting a transaction: {exc}"
                    ) from exc
                time.sleep(0.001 * 2**attempt)
            except PyFlueError:
                raise
            except PoolTimeout:
                raise StoreError(
                    f"no PostgreSQL connection to {self.where} became free in time; raise pool_size "
                    "or the server's max_connections"
                ) from None
            except psycopg.Error as exc:
                raise StoreError(_explain(exc, self.where)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_setup(self) -> ConnectionPool[Conn]:
        pool = self._pool
        if pool is not None and self._ready and not self._closed:
            return pool
        try:
            return self._open()
        except PyFlueError:
            raise
        except psycopg.Error as exc:
            raise StoreError(_explain(exc, self.where)) from exc

    async def run(self, fn: Callable[[Conn], T]) -> T:
        """:meth:`call` in a worker thread."""
        return await anyio.to_thread.run_sync(self.call, fn)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread (for work of several :meth:`call` transactions)."""
        return await anyio.to_thread.run_sync(fn)

    async def upgrade(self) -> int:
        """Create or migrate the schema to this code's version, under an advisory lock so processes
        starting together do not race; the version. Safe to call any time (a no-op when current)."""

        def work() -> int:
            with self._open(check=False).connection() as conn:
                version = self._migrate(conn, apply=True)
            self._ready = True
            return version

        try:
            return await anyio.to_thread.run_sync(work)
        except psycopg.Error as exc:
            raise StoreError(_explain(exc, self.where)) from exc

    async def watch(self, topic: str) -> Watch:
        """A :class:`~pyflue.stores.postgres.notify.Watch` of a notification topic of this schema."""
        return await self.notifier.watch(topic)

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening, wake every waiter and close the pool's connections; later calls fail."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        self.notifier.close()
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> PostgresDatabase:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()


def _explain(exc: psycopg.Error, where: str) -> str:
    """What went wrong, and what to do, for a PostgreSQL error (no password is ever quoted)."""
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"PostgreSQL at {where} refused: {message}; grant the user the rights on the schema"
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"PostgreSQL at {where} failed: {message}; check the URL (PYFLUE_DATABASE_URL) and that "
            "the server runs and accepts connections"
        )
    return f"PostgreSQL at {where} failed: {message}"
