"""Session histories in SQLite: append-only message rows, and one head row per session (version and
turn lease; see :mod:`pyflue.stores.sessions`).

Messages are encoded and decoded (:func:`~pyflue.stores.sessions.encode_message`,
:func:`~pyflue.stores.sessions.decode_messages`) in the worker thread that runs the statement, never
on the event loop.
"""

from __future__ import annotations

import sqlite3
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from ..sessions import (
    SessionKey,
    StaleVersionError,
    StoredHistory,
    StoredMessage,
    check_page,
    check_ttl,
    decode_messages,
    encode_message,
)
from .database import SQLiteDatabase, table_exists

__all__ = ["SQLiteSessionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    agent TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (agent, instance_id, session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_heads (
    agent TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    PRIMARY KEY (agent, instance_id, session_id)
) WITHOUT ROWID;
"""

_KEY = "agent=?1 AND instance_id=?2 AND session_id=?3"

# Sets the version; ends the lease of ?5 when it holds it (right-hand sides see the old row).
_BUMP = (
    "INSERT INTO session_heads (agent, instance_id, session_id, version) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT DO UPDATE SET version=excluded.version, "
    "lease_owner=CASE WHEN lease_owner=?5 THEN NULL ELSE lease_owner END, "
    "lease_expires=CASE WHEN lease_owner=?5 THEN NULL ELSE lease_expires END"
)


# The agent's distinct instance ids (after ?2 with _AFTER), at most ?3 (-1: no limit), as a loose index
# scan: each step is one seek in the messages' primary key (agent, instance_id, ...) for the smallest
# id after the previous one, so a page costs ?3 seeks however many messages and instances the agent
# has. BINARY collation on UTF-8 text is code-point order, as Python sorts.
_INSTANCES = """
WITH RECURSIVE ids(id) AS (
    SELECT (SELECT min(instance_id) FROM messages WHERE agent=?1 {after})
    UNION ALL
    SELECT (SELECT min(instance_id) FROM messages WHERE agent=?1 AND instance_id > ids.id)
    FROM ids WHERE ids.id IS NOT NULL
    LIMIT ?3
)
SELECT id FROM ids WHERE id IS NOT NULL
"""
_AFTER = "AND instance_id > ?2"


def _version(conn: sqlite3.Connection, key: SessionKey) -> int:
    row = conn.execute(f"SELECT version FROM session_heads WHERE {_KEY}", key).fetchone()
    return int(row[0]) if row is not None else 0


def _check(conn: sqlite3.Connection, key: SessionKey, expected: int | None) -> int:
    """The session's version; ``StaleVersionError`` when it is not ``expected``."""
    version = _version(conn, key)
    if expected is not None and version != expected:
        raise StaleVersionError(
            f"session {key.session_id!r} is at version {version}, not {expected}: another owner "
            "changed it; reload it and take the turn again"
        )
    return version


def _release(conn: sqlite3.Connection, key: SessionKey, owner: str) -> None:
    conn.execute(
        f"UPDATE session_heads SET lease_owner=NULL, lease_expires=NULL WHERE {_KEY} AND lease_owner=?4",
        (*key, owner),
    )


class SQLiteSessionStore:
    """The :class:`~pyflue.stores.sessions.SessionStore` of a SQLite file.

    ``SQLiteSessionStore(path)`` opens its own :class:`SQLiteDatabase` and closes it in
    :meth:`aclose`; ``SQLiteSessionStore(db)`` uses a database its owner shares between stores and
    closes itself. Two store objects (in one process or in several) on one file see each other's
    histories, versions and leases. Reading a file that does not exist finds empty sessions and
    creates nothing.
    """

    def __init__(self, path: str | Path | SQLiteDatabase) -> None:
        self._owns_db = not isinstance(path, SQLiteDatabase)
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase(path)
        self.db.ensure_schema("messages", _SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteSessionStore({str(self.db.path)!r})"

    # -- reads -----------------------------------------------------------------------------------------

    def _load(self, key: SessionKey) -> StoredHistory:
        if not self.db.exists():
            return StoredHistory()

        def read(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            if self.db.read_only and not table_exists(conn, "session_heads"):
                if not table_exists(conn, "messages"):
                    return [], 0
                version = 0
            else:
                version = _version(conn, key)
            rows = conn.execute(f"SELECT data FROM messages WHERE {_KEY} ORDER BY seq", key).fetchall()
            return rows, version

        rows, version = self.db.call(read, write=False)
        return StoredHistory(decode_messages([r[0] for r in rows]), version)

    async def load(self, key: SessionKey) -> StoredHistory:
        return await anyio.to_thread.run_sync(self._load, key)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            if self.db.read_only and not table_exists(conn, "messages"):
                return []
            rows = conn.execute(
                "SELECT DISTINCT session_id FROM messages WHERE agent=? AND instance_id=? "
                "ORDER BY session_id",
                (agent, instance_id),
            ).fetchall()
            return [r[0] for r in rows]

        def work() -> list[str]:
            return self.db.call(read, write=False) if self.db.exists() else []

        return await anyio.to_thread.run_sync(work)

    async def list_instances(
        self, agent: str, *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        check_page(limit)

        def read(conn: sqlite3.Connection) -> list[str]:
            if self.db.read_only and not table_exists(conn, "messages"):
                return []
            query = _INSTANCES.format(after="" if after is None else _AFTER)
            rows = conn.execute(query, (agent, after, -1 if limit is None else limit)).fetchall()
            return [r[0] for r in rows]

        def work() -> list[str]:
            return self.db.call(read, write=False) if self.db.exists() else []

        return await anyio.to_thread.run_sync(work)

    # -- writes ----------------------------------------------------------------------------------------

    def _append(
        self, key: SessionKey, messages: Sequence[StoredMessage], expected: int | None, release: str | None
    ) -> int:
        if not messages and release is None:
            return self._load_version(key)
        blobs = [encode_message(m) for m in messages]

        def write(conn: sqlite3.Connection) -> int:
            version = _check(conn, key, expected)
            if not blobs:
                if release is not None:
                    _release(conn, key, release)
                return version
            (last,) = conn.execute(f"SELECT coalesce(max(seq), 0) FROM messages WHERE {_KEY}", key).fetchone()
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                [(*key, last + i + 1, blob) for i, blob in enumerate(blobs)],
            )
            conn.execute(_BUMP, (*key, version + 1, release))
            return version + 1

        return self.db.call(write)

    def _load_version(self, key: SessionKey) -> int:
        if not self.db.exists():
            return 0

        def read(conn: sqlite3.Connection) -> int:
            if self.db.read_only and not table_exists(conn, "session_heads"):
                return 0
            return _version(conn, key)

        return self.db.call(read, write=False)

    async def append(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        return await anyio.to_thread.run_sync(self._append, key, list(messages), expected, release)

    def _replace(
        self, key: SessionKey, messages: Sequence[StoredMessage], expected: int | None, release: str | None
    ) -> int:
        blobs = [encode_message(m) for m in messages]

        def write(conn: sqlite3.Connection) -> int:
            version = _check(conn, key, expected)
            conn.execute(f"DELETE FROM messages WHERE {_KEY}", key)
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [(*key, i + 1, b) for i, b in enumerate(blobs)]
            )
            conn.execute(_BUMP, (*key, version + 1, release))
            return version + 1

        return self.db.call(write)

    async def replace(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        return await anyio.to_thread.run_sync(self._replace, key, list(messages), expected, release)

    async def delete(self, key: SessionKey) -> None:
        def write(conn: sqlite3.Connection) -> None:
            deleted = conn.execute(f"DELETE FROM messages WHERE {_KEY}", key).rowcount
            bumped = conn.execute(f"UPDATE session_heads SET version=version+1 WHERE {_KEY}", key).rowcount
            if deleted and not bumped:
                conn.execute(_BUMP, (*key, 1, None))

        await self.db.run(write)

    # -- turn leases -----------------------------------------------------------------------------------

    async def acquire(self, key: SessionKey, owner: str, ttl: float) -> int | None:
        check_ttl(ttl)

        def write(conn: sqlite3.Connection) -> int | None:
            now = time.time()
            row = conn.execute(
                f"SELECT version, lease_owner, lease_expires FROM session_heads WHERE {_KEY}", key
            ).fetchone()
            if row is None:
                conn.execute("INSERT INTO session_heads VALUES (?, ?, ?, 0, ?, ?)", (*key, owner, now + ttl))
                return 0
            version, holder, expires = row
            if holder is not None and holder != owner and expires > now:
                return None
            conn.execute(
                f"UPDATE session_heads SET lease_owner=?4, lease_expires=?5 WHERE {_KEY}",
                (*key, owner, now + ttl),
            )
            return int(version)

        return await self.db.run(write)

    async def release(self, key: SessionKey, owner: str) -> None:
        await self.db.run(lambda conn: _release(conn, key, owner))

    # -- lifetime --------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the database if this store opened it (not one it was given)."""
        if self._owns_db:
            await self.db.aclose()

    async def __aenter__(self) -> SQLiteSessionStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()
