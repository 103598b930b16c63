"""One SQLite file: one connection, used from worker threads, one transaction at a time.

The stores of a process share a :class:`SQLiteDatabase` per file (whoever opens them — a runtime, a
project — owns it and closes it); other processes open the same file with their own (WAL lets readers
and one writer proceed together). A file that exists but that this process may not write (a read-only
file, directory or mount) is opened read-only: reads work, and a write fails with a
:class:`~pyflue.errors.StoreError` that says so.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import anyio.to_thread

from ...errors import StoreError

__all__ = ["SQLiteDatabase", "table_exists"]

T = TypeVar("T")

#: How long a statement waits for another process's lock before it fails, in seconds.
BUSY_TIMEOUT = 30.0

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _code(exc: sqlite3.Error) -> int:
    """The primary result code of a SQLite error (0 when it carries none)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` and create files beside it (``-wal``, ``-shm``)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class SQLiteDatabase:
    """A SQLite file shared by the stores of one owner.

    ``await db.run(fn)`` calls ``fn(connection)`` in a worker thread inside a transaction (committed
    on return, rolled back on error); ``db.call(fn)`` does the same in the calling thread. Writers
    take the write lock up front (``BEGIN IMMEDIATE``) so they never fail half-way on a busy file.
    The connection opens on first use, after which registered schemas are applied once. ``close()``
    (or ``aclose()``, or leaving ``async with``) closes it; the object is not used afterwards.

    ``read_only=True`` opens the file read-only even where it could be written.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._want_read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._read_only = False
        self._closed = False
        self._schemas: dict[str, str] = {}
        self._applied: set[str] = set()

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    @property
    def read_only(self) -> bool:
        """Whether the connection is (or will be) read-only: asked for, or the file or its
        directory is not writable by this process."""
        if self._conn is not None:
            return self._read_only
        return self._want_read_only or (self.path.exists() and not _writable(self.path))

    def exists(self) -> bool:
        """Whether the file exists (reads of a missing file find nothing and create nothing)."""
        return self.path.exists()

    def ensure_schema(self, name: str, sql: str) -> None:
        """Register idempotent DDL (``CREATE ... IF NOT EXISTS``); it runs once, in its own write
        transaction, before the next statement."""
        self._schemas.setdefault(name, sql)

    # -- connecting ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"SQLite database {self.path} is closed; open a new SQLiteDatabase")
        if self._conn is not None:
            return self._conn
        read_only = self.read_only
        if read_only and not self.path.exists():
            raise StoreError(f"SQLite database {self.path} does not exist, and it is opened read-only")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory of {self.path} ({exc.strerror or exc}); "
                    "make it writable or choose another path"
                ) from None
            if not os.access(self.path.parent, os.W_OK):
                raise StoreError(
                    f"cannot create {self.path}: its directory is not writable by this process; "
                    "make it writable or choose another path"
                )
        conn = _open(self.path, "ro" if read_only else None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            if read_only:
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError as exc:
                    if _code(exc) != sqlite3.SQLITE_CANTOPEN:
                        raise
                    # A WAL file whose -shm index is absent and cannot be created here: nobody
                    # has it open for writing, so it is read as it is on disk.
                    conn.close()
                    conn = _open(self.path, "ro&immutable=1")
            else:
                # Switching to WAL needs an exclusive lock, and SQLite reports a lock conflict at
                # that point without waiting (busy handlers do not run there): retry it.
                _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchall())
                conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        self._conn, self._read_only = conn, read_only
        return conn

    def _apply_schemas(self, conn: sqlite3.Connection) -> None:
        for name, sql in self._schemas.items():
            if name in self._applied:
                continue
            if not self._read_only:

                def create(sql: str = sql) -> None:
                    try:
                        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;COMMIT;")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise

                _retry_busy(create)
            self._applied.add(name)

    # -- transactions --------------------------------------------------------------------------------

    def call(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction, in the calling thread; a ``StoreError`` that says what
        went wrong when SQLite fails."""
        with self._lock:
            try:
                conn = self._connect()
                self._apply_schemas(conn)
                if write and self._read_only:
                    why = "as asked" if self._want_read_only else "no write access to it or its folder"
                    raise StoreError(
                        f"SQLite database {self.path} is open read-only ({why}): reading works, "
                        "writing needs write access to the file and its directory"
                    )
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(_explain(exc, self.path)) from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """:meth:`call` in a worker thread."""
        return await anyio.to_thread.run_sync(self.call, fn, write)

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (waiting for a transaction in progress); later calls fail."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> SQLiteDatabase:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()


def _open(path: Path, mode: str | None) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}" + (f"?mode={mode}" if mode else "")
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database has table ``name`` (a read-only file may predate a store's schema)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return row is not None


def _retry_busy(fn: Callable[[], object]) -> None:
    """Call ``fn``, again with backoff while SQLite reports a lock conflict, for at most
    :data:`BUSY_TIMEOUT` seconds."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    delay = 0.001
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if _code(exc) not in _BUSY or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _explain(exc: sqlite3.Error, path: Path) -> str:
    """What went wrong, and what to do, for a SQLite error on ``path``."""
    code = _code(exc)
    if code in _BUSY:
        return (
            f"SQLite database {path} stayed locked by another connection for more than "
            f"{BUSY_TIMEOUT:g} s ({exc}); is a long write running elsewhere?"
        )
    if code == sqlite3.SQLITE_READONLY:
        return (
            f"SQLite database {path} cannot be written ({exc}): check the permissions of the file "
            "and of its directory (SQLite creates -wal and -shm files beside it)"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        if not path.parent.is_dir():
            return f"cannot open SQLite database {path}: {path.parent} is not a directory"
        if path.is_dir():
            return f"cannot open SQLite database {path}: it is a directory"
        if not os.access(path.parent, os.W_OK):
            return f"cannot open SQLite database {path}: its directory is not writable by this process"
        return f"cannot open SQLite database {path} ({exc}); check that it is a readable file"
    if code == sqlite3.SQLITE_FULL:
        return f"SQLite database {path}: the disk is full ({exc}); free disk space"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"{path} is not a SQLite database, or it is damaged ({exc})"
    if code == sqlite3.SQLITE_IOERR:
        return f"SQLite database {path}: disk I/O error ({exc}); check the disk and free space"
    return f"SQLite database {path} failed: {exc}"
