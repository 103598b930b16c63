"""Session histories in PostgreSQL: append-only message rows and one head row per session holding its
version, its message count and its turn lease (see :mod:`pyflue.stores.sessions`).

Every write is one statement: the head row's upsert takes the session's row lock (so concurrent turns
of one session queue up, other sessions never wait), checks the fenced version, bumps it, and feeds the
positions of the appended rows; an append costs the same whatever the history's length. ``replace`` is
one transaction (delete, insert, bump): readers see the old history or the new one, never a mix. Leases
are judged by the server's clock. Messages are encoded and decoded in the worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import InvalidIdError
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
from .interface import Conn, Database

__all__ = ["PostgresSessionStore", "instances_query"]

_KEY = "agent = %s AND instance_id = %s AND session_id = %s"
_INSERT_HEAD = "INSERT INTO session_heads AS h (agent, instance_id, session_id, version, message_count)"
# Releases the lease of the owner in %(release)s (NULL: nobody) while bumping the version.
_RELEASE = (
    "lease_owner = CASE WHEN h.lease_owner = %(release)s THEN NULL ELSE h.lease_owner END, "
    "lease_expires = CASE WHEN h.lease_owner = %(release)s THEN NULL ELSE h.lease_expires END"
)
# Append: bump the head (fenced by %(expected)s when given), then add the rows after its old count.
_APPEND = f"""
WITH head AS (
    {_INSERT_HEAD} VALUES (%(agent)s, %(instance)s, %(session)s, 1, %(n)s)
    ON CONFLICT (agent, instance_id, session_id) DO UPDATE SET
        version = h.version + 1, message_count = h.message_count + %(n)s, {_RELEASE}
    WHERE %(expected)s::bigint IS NULL OR h.version = %(expected)s::bigint
    RETURNING version, message_count
), added AS (
    INSERT INTO session_messages (agent, instance_id, session_id, seq, data)
    SELECT %(agent)s, %(instance)s, %(session)s, head.message_count - %(n)s + m.ord, m.data
    FROM head, unnest(%(data)s::bytea[]) WITH ORDINALITY AS m(data, ord)
)
SELECT version FROM head
"""
# The same for a fenced write to a session that must exist (expected > 0): never creates a head.
_APPEND_EXISTING = f"""
WITH head AS (
    UPDATE session_heads AS h SET
        version = h.version + 1, message_count = h.message_count + %(n)s, {_RELEASE}
    WHERE agent = %(agent)s AND instance_id = %(instance)s AND session_id = %(session)s
        AND h.version = %(expected)s::bigint
    RETURNING version, message_count
), added AS (
    INSERT INTO session_messages (agent, instance_id, session_id, seq, data)
    SELECT %(agent)s, %(instance)s, %(session)s, head.message_count - %(n)s + m.ord, m.data
    FROM head, unnest(%(data)s::bytea[]) WITH ORDINALITY AS m(data, ord)
)
SELECT version FROM head
"""
_ACQUIRE = """
INSERT INTO session_heads AS h
    (agent, instance_id, session_id, version, message_count, lease_owner, lease_expires)
VALUES (%s, %s, %s, 0, 0, %s, clock_timestamp() + %s * interval '1 second')
ON CONFLICT (agent, instance_id, session_id) DO UPDATE SET
    lease_owner = excluded.lease_owner, lease_expires = excluded.lease_expires
WHERE h.lease_owner IS NULL OR h.lease_owner = excluded.lease_owner OR h.lease_expires <= clock_timestamp()
RETURNING version
"""


_INSTANCES = """
SELECT DISTINCT instance_id COLLATE "C" AS id FROM session_heads
WHERE agent = %(agent)s AND message_count > 0 {after}
ORDER BY id LIMIT %(limit)s
"""
_AFTER = 'AND instance_id COLLATE "C" > %(after)s'


def instances_query(*, after: bool) -> str:
    """The query of one page of ``list_instances``: the agent's distinct instance ids holding messages
    (``%(agent)s``), in code-point order ("C"), after ``%(after)s`` when ``after``, at most
    ``%(limit)s`` (NULL: all). The index ``session_heads_instances`` on ``(agent, instance_id COLLATE
    "C")`` over the heads with messages makes it an ordered walk over the sessions of one page's
    instances (decision 0024). The query with ``after`` and the one without are separate texts, so
    the first page's plan has no ``after`` condition to weigh."""
    return _INSTANCES.format(after=_AFTER if after else "")


def _check_key(key: SessionKey) -> SessionKey:
    for part in key:
        if not isinstance(part, str) or "\x00" in part:
            raise InvalidIdError(
                f"session key part {part!r} is not text without NUL characters "
                "(PostgreSQL text cannot hold them)"
            )
    return SessionKey(*key)


def _stale(conn: Conn, key: SessionKey, expected: int) -> StaleVersionError:
    row = conn.execute(f"SELECT version FROM session_heads WHERE {_KEY}", key).fetchone()
    version = int(row[0]) if row else 0
    return StaleVersionError(
        f"session {key.session_id!r} is at version {version}, not {expected}: another owner "
        "changed it; reload it and take the turn again"
    )


def _version(conn: Conn, key: SessionKey) -> int:
    row = conn.execute(f"SELECT version FROM session_heads WHERE {_KEY}", key).fetchone()
    return int(row[0]) if row else 0


def _bump(conn: Conn, key: SessionKey, blobs: list[bytes], expected: int | None, release: str | None) -> int:
    """Append ``blobs`` after the head's count, bumping the version; the new version."""
    params: dict[str, Any] = {
        "agent": key.agent,
        "instance": key.instance_id,
        "session": key.session_id,
        "n": len(blobs),
        "data": blobs,
        "expected": expected,
        "release": release,
    }
    row = conn.execute(_APPEND_EXISTING if expected else _APPEND, params).fetchone()
    if row is None:
        raise _stale(conn, key, expected or 0)
    return int(row[0])


class PostgresSessionStore:
    """The :class:`~pyflue.stores.sessions.SessionStore` of a :class:`PostgresDatabase`. Every
    process and host using the database sees the same histories, versions and leases. Closing the
    store leaves the database open (its owner closes it)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return f"PostgresSessionStore({self.db!r})"

    async def load(self, key: SessionKey) -> StoredHistory:
        key = _check_key(key)

        def read(conn: Conn) -> StoredHistory:
            # One statement, one snapshot: the version and the messages agree.
            rows = conn.execute(
                "SELECT h.version, m.data FROM session_heads h LEFT JOIN session_messages m "
                "USING (agent, instance_id, session_id) "
                "WHERE h.agent = %s AND h.instance_id = %s AND h.session_id = %s ORDER BY m.seq",
                key,
            ).fetchall()
            if not rows:
                return StoredHistory()
            blobs = [bytes(r[1]) for r in rows if r[1] is not None]
            return StoredHistory(decode_messages(blobs), int(rows[0][0]))

        return await self.db.run(read)

    async def append(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        key = _check_key(key)
        batch = list(messages)

        def write(conn: Conn) -> int:
            if not batch:
                version = _version(conn, key)
                if expected is not None and version != expected:
                    raise _stale(conn, key, expected)
                if release is not None:
                    _release(conn, key, release)
                return version
            return _bump(conn, key, [encode_message(m) for m in batch], expected, release)

        return await self.db.run(write)

    async def replace(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        key = _check_key(key)
        batch = list(messages)

        def write(conn: Conn) -> int:
            blobs = [encode_message(m) for m in batch]
            # Lock the head (creating it at version 0) before the rows change under it.
            conn.execute(f"{_INSERT_HEAD} VALUES (%s, %s, %s, 0, 0) ON CONFLICT DO NOTHING", key)
            row = conn.execute(f"SELECT version FROM session_heads WHERE {_KEY} FOR UPDATE", key).fetchone()
            version = int(row[0]) if row else 0
            if expected is not None and version != expected:
                raise _stale(conn, key, expected)
            conn.execute(f"DELETE FROM session_messages WHERE {_KEY}", key)
            conn.execute(f"UPDATE session_heads SET message_count = 0 WHERE {_KEY}", key)
            return _bump(conn, key, blobs, None, release)

        return await self.db.run(write)

    async def delete(self, key: SessionKey) -> None:
        key = _check_key(key)

        def write(conn: Conn) -> None:
            conn.execute(
                f"UPDATE session_heads SET version = version + 1, message_count = 0 WHERE {_KEY}", key
            )
            conn.execute(f"DELETE FROM session_messages WHERE {_KEY}", key)

        await self.db.run(write)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        _check_key(SessionKey(agent, instance_id, ""))

        def read(conn: Conn) -> list[str]:
            rows = conn.execute(
                "SELECT session_id FROM session_heads WHERE agent = %s AND instance_id = %s "
                'AND message_count > 0 ORDER BY session_id COLLATE "C"',
                (agent, instance_id),
            ).fetchall()
            return [r[0] for r in rows]

        return await self.db.run(read)

    async def list_instances(
        self, agent: str, *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        check_page(limit)
        _check_key(SessionKey(agent, "", "" if after is None else after))
        query = instances_query(after=after is not None)

        def read(conn: Conn) -> list[str]:
            rows = conn.execute(query, {"agent": agent, "after": after, "limit": limit}).fetchall()
            return [r[0] for r in rows]

        return await self.db.run(read)

    async def acquire(self, key: SessionKey, owner: str, ttl: float) -> int | None:
        check_ttl(ttl)
        key = _check_key(key)

        def write(conn: Conn) -> int | None:
            row = conn.execute(_ACQUIRE, (*key, owner, ttl)).fetchone()
            return None if row is None else int(row[0])

        return await self.db.run(write)

    async def release(self, key: SessionKey, owner: str) -> None:
        key = _check_key(key)
        await self.db.run(lambda conn: _release(conn, key, owner))

    async def aclose(self) -> None:
        """Nothing of its own to release: the database's owner closes it."""


def _release(conn: Conn, key: SessionKey, owner: str) -> None:
    conn.execute(
        f"UPDATE session_heads SET lease_owner = NULL, lease_expires = NULL "
        f"WHERE {_KEY} AND lease_owner = %s",
        (*key, owner),
    )
