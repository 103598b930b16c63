"""SQLite storage: one file (``.pyflue/pyflue.db`` in a project), WAL mode, stdlib ``sqlite3``.

Every statement runs in a worker thread so the event loop never blocks on disk. One connection per
database file, guarded by a lock, serves all stores of a process (sessions, runs, dispatch); other
processes open the same file concurrently (WAL lets readers and one writer proceed together).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from ..errors import StoreError
from ..models.messages import MESSAGES_ADAPTER
from .base import SessionKey, StoredMessage

__all__ = ["SQLiteDatabase", "SQLiteSessionStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    agent TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (agent, instance_id, session_id, seq)
) WITHOUT ROWID;
"""


class SQLiteDatabase:
    """A SQLite file shared by the stores; ``await db.run(fn)`` calls ``fn(connection)`` in a
    worker thread inside a transaction (committed on return, rolled back on error)."""

    _open: dict[str, SQLiteDatabase] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._schemas: dict[str, str] = {}
        self._applied: set[str] = set()

    @classmethod
    def for_path(cls, path: str | Path) -> SQLiteDatabase:
        """The process-wide database object of a file (one connection per file)."""
        key = str(Path(path).resolve())
        with cls._open_lock:
            db = cls._open.get(key)
            if db is None:
                db = cls._open[key] = cls(key)
            return db

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def ensure_schema(self, name: str, sql: str) -> None:
        """Register idempotent DDL; it runs (in a worker thread) before the first statement."""
        self._schemas.setdefault(name, sql)

    def call(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction, in the calling thread. Writers take the write lock up
        front (``BEGIN IMMEDIATE``) so they never fail half-way on a busy database."""
        with self._lock:
            try:
                conn = self._connect()
                for name, sql in self._schemas.items():
                    if name not in self._applied:
                        conn.executescript(sql)
                        self._applied.add(name)
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(
                    f"SQLite store {self.path} failed: {exc}; check the file and free disk space"
                ) from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        return await anyio.to_thread.run_sync(self.call, fn, write)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._applied.clear()


def _encode(message: StoredMessage) -> bytes:
    return MESSAGES_ADAPTER.dump_json([message], exclude_none=True)  # type: ignore[list-item]


class SQLiteSessionStore:
    """Append-only message rows: a turn inserts only its new messages."""

    def __init__(self, path: str | Path | SQLiteDatabase) -> None:
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase.for_path(path)
        self.db.ensure_schema("messages", _SCHEMA)

    async def load(self, key: SessionKey) -> list[StoredMessage]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT data FROM messages WHERE agent=? AND instance_id=? AND session_id=? ORDER BY seq", key
            ).fetchall()

        rows = await self.db.run(read, write=False)
        if not rows:
            return []
        return MESSAGES_ADAPTER.validate_json(b"[" + b",".join(bytes(r[0])[1:-1] for r in rows) + b"]")

    async def append(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        blobs = [_encode(m) for m in messages]

        def write(conn: sqlite3.Connection) -> None:
            (last,) = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE agent=? AND instance_id=? AND session_id=?",
                key,
            ).fetchone()
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                [(*key, last + i + 1, blob) for i, blob in enumerate(blobs)],
            )

        await self.db.run(write)

    async def replace(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        blobs = [_encode(m) for m in messages]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE agent=? AND instance_id=? AND session_id=?", key)
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [(*key, i + 1, b) for i, b in enumerate(blobs)]
            )

        await self.db.run(write)

    async def delete(self, key: SessionKey) -> None:
        await self.db.run(
            lambda conn: conn.execute(
                "DELETE FROM messages WHERE agent=? AND instance_id=? AND session_id=?", key
            ).fetchall()
        )

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT DISTINCT session_id FROM messages WHERE agent=? AND instance_id=? ORDER BY session_id",
                (agent, instance_id),
            ).fetchall(),
            write=False,
        )
        return [r[0] for r in rows]
