"""The SQLite dispatch store: items, attempts and delivery events in the project's database file.

Three tables: ``dispatch_items`` (one row per dispatch, numbered by ``position`` in acceptance
order), ``dispatch_attempts`` and ``dispatch_events``. Every write is one ``BEGIN IMMEDIATE``
transaction in a worker thread (``SQLiteDatabase.run``), so processes sharing the file serialise
their claims and never take one item twice.

Claims stay O(log n) however many items wait: each session's head — its earliest queued or running
item — carries ``ready_at`` (when it becomes claimable: its ``available_at`` if queued, its
``lease_expires`` if running); every other row has ``ready_at`` NULL. A claim reads the partial
index on ``ready_at`` in order, and finishing a head moves ``ready_at`` to the session's next item
(found through a partial index of the queued and running rows of each session).

Concurrent ``enqueue`` calls on one store object share a transaction (group commit). The transaction
bodies and the row form are :mod:`pyflue.stores.dispatch_rows`'s, shared with PostgreSQL.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ...errors import ConfigError, NotFoundError, PyFlueError
from ...events import Event
from ..changes import Topics, Watch
from ..dispatch_rows import (
    ATTEMPT_COLUMNS,
    COLUMNS,
    PENDING,
    GroupCommit,
    attempt_of,
    cancel_in,
    claim_in,
    end_in,
    json_bytes,
    micros,
    outcome_bytes,
    record_of,
    record_values,
)
from ..dispatches import (
    Attempt,
    AttemptStatus,
    ChangeSignal,
    DispatchOutcome,
    DispatchPage,
    DispatchRecord,
    accepted,
    cancelled,
    check_events,
    check_lease,
    check_list_args,
    completed,
    decode_cursor,
    decode_event,
    encode_cursor,
    encode_event,
    failed,
    from_us,
    key_conflict,
    ready_at_us,
    to_us,
)
from .database import SQLiteDatabase

__all__ = ["SQLiteDispatchStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dispatch_items (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    dispatch_id TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    input BLOB NOT NULL,
    key TEXT,
    status TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    worker TEXT,
    lease_expires INTEGER,
    cancel_requested TEXT,
    outcome BLOB,
    traceparent TEXT,
    ready_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS dispatch_items_key ON dispatch_items (key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS dispatch_items_ready ON dispatch_items (ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS dispatch_items_pending ON dispatch_items (agent, instance_id, session_id, position)
    WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS dispatch_items_target ON dispatch_items (agent, instance_id, session_id, position);
CREATE INDEX IF NOT EXISTS dispatch_items_status ON dispatch_items (status, position);
CREATE TABLE IF NOT EXISTS dispatch_attempts (
    dispatch_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    status TEXT NOT NULL,
    error BLOB,
    PRIMARY KEY (dispatch_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dispatch_events (
    dispatch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event BLOB NOT NULL,
    PRIMARY KEY (dispatch_id, seq)
) WITHOUT ROWID;
"""

_SELECT = f"SELECT {COLUMNS}, position, ready_at FROM dispatch_items"
_INSERT = f"INSERT INTO dispatch_items ({COLUMNS}, ready_at) VALUES ({', '.join('?' * 18)})"


class _Table:
    """The store's statements in one write transaction (:class:`~pyflue.stores.dispatch_rows.Table`);
    remembers the items it finished, whose watchers the store wakes after the commit."""

    def __init__(
        self, conn: sqlite3.Connection, clock: Callable[[], float], finished: builtins.list[str] | None = None
    ) -> None:
        self.conn = conn
        self._clock = clock
        self.finished: builtins.list[str] = [] if finished is None else finished

    def now(self) -> datetime:
        return from_us(round(self._clock() * 1_000_000))

    def heads(self, now: datetime, limit: int) -> builtins.list[DispatchRecord]:
        rows = self.conn.execute(
            f"{_SELECT} WHERE ready_at <= ? ORDER BY ready_at, position LIMIT ?", (to_us(now), limit)
        ).fetchall()
        return [record_of(row) for row in rows]

    def load(self, dispatch_id: str) -> tuple[DispatchRecord, bool] | None:
        row = self.conn.execute(f"{_SELECT} WHERE dispatch_id=?", (dispatch_id,)).fetchone()
        return None if row is None else (record_of(row), row[18] is not None)

    def save(self, new: DispatchRecord, was_head: bool) -> None:
        ready = ready_at_us(new) if was_head and not new.finished else None
        self.conn.execute(
            "UPDATE dispatch_items SET status=?, available_at=?, updated_at=?, attempts=?, worker=?, "
            "lease_expires=?, cancel_requested=?, outcome=?, ready_at=? WHERE dispatch_id=?",
            (
                new.status,
                to_us(new.available_at),
                to_us(new.updated_at),
                new.attempts,
                new.worker,
                micros(new.lease_expires),
                new.cancel_requested,
                outcome_bytes(new),
                ready,
                new.dispatch_id,
            ),
        )
        if new.finished:
            self.finished.append(new.dispatch_id)
        if was_head and new.finished:
            row = self.conn.execute(
                f"{_SELECT} WHERE agent=? AND instance_id=? AND session_id=? AND {PENDING} "
                "ORDER BY position LIMIT 1",
                new.target,
            ).fetchone()
            if row is not None:
                self.conn.execute(
                    "UPDATE dispatch_items SET ready_at=? WHERE position=?",
                    (ready_at_us(record_of(row)), row[17]),
                )

    def add_attempt(self, attempt: Attempt) -> None:
        self.conn.execute(
            f"INSERT INTO dispatch_attempts ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, NULL, 'running', NULL)",
            (attempt.dispatch_id, attempt.number, attempt.worker, to_us(attempt.started_at)),
        )

    def close_attempt(
        self, record: DispatchRecord, now: datetime, status: AttemptStatus, error: dict[str, Any] | None
    ) -> None:
        self.conn.execute(
            "UPDATE dispatch_attempts SET ended_at=?, status=?, error=? WHERE dispatch_id=? AND number=?",
            (
                to_us(now),
                status,
                None if error is None else json_bytes(error),
                record.dispatch_id,
                record.attempts,
            ),
        )

    def insert(self, record: DispatchRecord, now: datetime) -> DispatchRecord:
        if record.key is not None:
            row = self.conn.execute(f"{_SELECT} WHERE key=?", (record.key,)).fetchone()
            if row is not None:
                return key_conflict(record_of(row), record)
        stored = accepted(record, now)
        head = self.conn.execute(
            f"SELECT 1 FROM dispatch_items WHERE agent=? AND instance_id=? AND session_id=? AND {PENDING} "
            "LIMIT 1",
            stored.target,
        ).fetchone()
        try:
            self.conn.execute(_INSERT, (*record_values(stored), None if head else ready_at_us(stored)))
        except sqlite3.IntegrityError:  # the one unique column not checked above
            raise ConfigError(
                f"dispatch id {record.dispatch_id!r} exists already; leave it to the default"
            ) from None
        return stored


class SQLiteDispatchStore:
    """Dispatches in a SQLite file (``path``, or a :class:`SQLiteDatabase` to share its
    connection). ``clock`` (seconds since the epoch) is the store's time, injectable so leases can
    be tested without sleeping. ``wait_changed`` and ``watch`` wake at once for this object's own
    writes and poll the file every ``poll_interval`` seconds for other connections' commits
    (``PRAGMA data_version``): SQLite has no way to push them.
    """

    def __init__(
        self,
        path: str | Path | SQLiteDatabase,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.05,
    ) -> None:
        self._owns_db = not isinstance(path, SQLiteDatabase)
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase(path)
        self.db.ensure_schema("dispatch", _SCHEMA)
        self._clock = clock
        self._poll = poll_interval
        self._signal = ChangeSignal()
        self._items = Topics()  # one topic per dispatch: its record or events changed
        self._group = GroupCommit(self._commit, self._committed)

    async def _write(self, body: Callable[[_Table], T]) -> T:
        """``body`` in one write transaction; then wake the watchers of the items it finished."""
        finished: builtins.list[str] = []
        result = await self.db.run(lambda conn: body(_Table(conn, self._clock, finished)))
        for dispatch_id in finished:
            self._items.touch(dispatch_id)
        return result

    def _commit(
        self, records: builtins.list[DispatchRecord]
    ) -> builtins.list[DispatchRecord | BaseException]:
        """One transaction for a batch of enqueues; a bad record fails only its own call."""

        def write(conn: sqlite3.Connection) -> builtins.list[DispatchRecord | BaseException]:
            table = _Table(conn, self._clock)
            now = table.now()
            results: builtins.list[DispatchRecord | BaseException] = []
            for record in records:
                try:
                    results.append(table.insert(record, now))
                except PyFlueError as exc:
                    results.append(exc)
            return results

        return self.db.call(write)

    def _committed(self, stored: builtins.list[DispatchRecord]) -> None:
        self._signal.notify()

    # -- the DispatchStore protocol -----------------------------------------------------------------

    async def enqueue(self, record: DispatchRecord) -> DispatchRecord:
        return await self._group.enqueue(record)

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> builtins.list[DispatchRecord]:
        check_lease(worker, lease_seconds, limit)
        taken, ended = await self._write(lambda table: claim_in(table, worker, lease_seconds, limit))
        if taken or ended:
            self._signal.notify()
        return taken

    async def renew(self, dispatch_id: str, worker: str, lease_seconds: float) -> bool:
        check_lease(worker, lease_seconds)

        def write(conn: sqlite3.Connection) -> bool:
            now = round(self._clock() * 1_000_000)
            expires = now + round(lease_seconds * 1_000_000)
            cursor = conn.execute(
                "UPDATE dispatch_items SET lease_expires=?1, ready_at=?1, updated_at=?2 "
                "WHERE dispatch_id=?3 AND status='running' AND worker=?4",
                (expires, now, dispatch_id, worker),
            )
            return cursor.rowcount > 0

        return await self.db.run(write)

    async def _finish(
        self,
        dispatch_id: str,
        worker: str,
        transition: Callable[[DispatchRecord, datetime], DispatchRecord],
        error: dict[str, Any] | None = None,
    ) -> DispatchRecord | None:
        new = await self._write(lambda table: end_in(table, dispatch_id, worker, transition, error))
        if new is not None:
            self._signal.notify()
            self._items.touch(dispatch_id)
        return new

    async def complete(
        self, dispatch_id: str, worker: str, outcome: DispatchOutcome
    ) -> DispatchRecord | None:
        return await self._finish(dispatch_id, worker, lambda r, now: completed(r, now, outcome))

    async def fail(
        self, dispatch_id: str, worker: str, error: dict[str, Any], retry_after: float | None
    ) -> DispatchRecord | None:
        return await self._finish(
            dispatch_id, worker, lambda r, now: failed(r, now, error, retry_after), error
        )

    async def finish_cancelled(self, dispatch_id: str, worker: str) -> DispatchRecord | None:
        return await self._finish(dispatch_id, worker, cancelled)

    async def cancel(self, dispatch_id: str, reason: str) -> DispatchRecord | None:
        result = await self._write(lambda table: cancel_in(table, dispatch_id, reason))
        if result is None:
            return None
        if result[1]:
            self._signal.notify()
            self._items.touch(dispatch_id)
        return result[0]

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        row = await self.db.run(
            lambda conn: conn.execute(f"{_SELECT} WHERE dispatch_id=?", (dispatch_id,)).fetchone(),
            write=False,
        )
        return None if row is None else record_of(row)

    async def list(
        self,
        *,
        agent: str | None = None,
        instance_id: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DispatchPage:
        check_list_args(status, limit)
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        for column, value in (
            ("agent", agent),
            ("instance_id", instance_id),
            ("session_id", session_id),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if cursor is not None:
            where.append("position<?")
            args.append(decode_cursor(cursor))
        args.append(limit + 1)
        sql = f"{_SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY position DESC LIMIT ?"
        rows = await self.db.run(lambda conn: conn.execute(sql, args).fetchall(), write=False)
        more = len(rows) > limit
        rows = rows[:limit]
        return DispatchPage([record_of(r) for r in rows], encode_cursor(rows[-1][17]) if more else None)

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM dispatch_attempts WHERE dispatch_id=? ORDER BY number",
                (dispatch_id,),
            ).fetchall(),
            write=False,
        )
        return [attempt_of(r) for r in rows]

    async def append_events(self, dispatch_id: str, events: Sequence[Event]) -> None:
        rows = [(dispatch_id, e.seq, encode_event(e)) for e in events]

        def write(conn: sqlite3.Connection) -> None:
            if not conn.execute(
                "SELECT 1 FROM dispatch_items WHERE dispatch_id=?", (dispatch_id,)
            ).fetchone():
                raise NotFoundError(
                    f"no dispatch {dispatch_id!r}; append events only to an enqueued dispatch"
                )
            (last,) = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM dispatch_events WHERE dispatch_id=?", (dispatch_id,)
            ).fetchone()
            check_events(dispatch_id, events, last)
            conn.executemany("INSERT INTO dispatch_events VALUES (?, ?, ?)", rows)

        await self.db.run(write)
        if rows:
            self._signal.notify()
            self._items.touch(dispatch_id)

    async def read_events(
        self, dispatch_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> builtins.list[Event]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT event FROM dispatch_events WHERE dispatch_id=? AND seq>? ORDER BY seq LIMIT ?",
                (dispatch_id, after_seq, -1 if limit is None else max(limit, 0)),
            ).fetchall(),
            write=False,
        )
        return [decode_event(blob) for (blob,) in rows]

    async def _version(self) -> tuple[int, int]:
        def read(conn: sqlite3.Connection) -> tuple[int, int]:
            (version,) = conn.execute("PRAGMA data_version").fetchone()
            return int(version), conn.total_changes

        return await self.db.run(read, write=False)

    async def wait_changed(self, timeout: float) -> bool:
        deadline = anyio.current_time() + timeout
        version = await self._version()
        while (remaining := deadline - anyio.current_time()) > 0:
            if await self._signal.wait(min(self._poll, remaining)):
                return True
            if await self._version() != version:
                return True
        return False

    async def watch(self, dispatch_id: str) -> Watch:
        """A watch of one dispatch: woken at once by this object's writes, and within
        ``poll_interval`` seconds by other connections' commits (which may concern other items)."""
        return self._items.watch(
            dispatch_id, probe=self._version, poll=self._poll, probed=await self._version()
        )

    async def aclose(self) -> None:
        """Wake waiters, and close the database if this store opened it (not one it was given)."""
        self._signal.notify()
        self._items.close()
        if self._owns_db:
            await self.db.aclose()
