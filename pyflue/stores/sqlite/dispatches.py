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

Concurrent ``enqueue`` calls on one store object share a transaction (group commit): the first
caller commits everything queued so far, and each call returns once its own row is committed.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic_core import from_json, to_json

from ...errors import ConfigError, NotFoundError, PyFlueError
from ...events import Event
from ..dispatches import (
    Attempt,
    AttemptStatus,
    ChangeSignal,
    DispatchOutcome,
    DispatchPage,
    DispatchRecord,
    accepted,
    attempt_end,
    cancelled,
    check_events,
    check_lease,
    check_list_args,
    claimed,
    completed,
    decode_cursor,
    decode_event,
    encode_cursor,
    encode_event,
    failed,
    from_us,
    holds,
    key_conflict,
    ready_at_us,
    taken_over,
    to_us,
)
from .database import SQLiteDatabase

__all__ = ["SQLiteDispatchStore"]

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

_COLUMNS = (
    "dispatch_id, agent, instance_id, session_id, input, key, status, accepted_at, available_at, "
    "updated_at, attempts, max_attempts, worker, lease_expires, cancel_requested, outcome, traceparent"
)
_SELECT = f"SELECT {_COLUMNS}, position, ready_at FROM dispatch_items"
_PENDING = "status IN ('queued', 'running')"  # the partial index's condition, spelled identically
_INSERT = f"INSERT INTO dispatch_items ({_COLUMNS}, ready_at) VALUES ({', '.join('?' * 18)})"
_ATTEMPT_COLUMNS = "dispatch_id, number, worker, started_at, ended_at, status, error"


def _json(value: Any) -> bytes:
    return to_json(value, fallback=repr, inf_nan_mode="null", bytes_mode="base64")


def _us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _row(record: DispatchRecord, ready_at: int | None) -> tuple[Any, ...]:
    return (
        record.dispatch_id,
        record.agent,
        record.instance_id,
        record.session_id,
        _json(record.input),
        record.key,
        record.status,
        to_us(record.accepted_at),
        to_us(record.available_at),
        to_us(record.updated_at),
        record.attempts,
        record.max_attempts,
        record.worker,
        _us(record.lease_expires),
        record.cancel_requested,
        None if record.outcome is None else record.outcome.model_dump_json().encode(),
        record.traceparent,
        ready_at,
    )


def _record(row: Sequence[Any]) -> DispatchRecord:
    return DispatchRecord(
        dispatch_id=row[0],
        agent=row[1],
        instance_id=row[2],
        session_id=row[3],
        input=from_json(row[4]),
        key=row[5],
        status=row[6],
        accepted_at=from_us(row[7]),
        available_at=from_us(row[8]),
        updated_at=from_us(row[9]),
        attempts=row[10],
        max_attempts=row[11],
        worker=row[12],
        lease_expires=_dt(row[13]),
        cancel_requested=row[14],
        outcome=None if row[15] is None else DispatchOutcome.model_validate_json(row[15]),
        traceparent=row[16],
    )


def _attempt(row: Sequence[Any]) -> Attempt:
    return Attempt(
        dispatch_id=row[0],
        number=row[1],
        worker=row[2],
        started_at=from_us(row[3]),
        ended_at=_dt(row[4]),
        status=row[5],
        error=None if row[6] is None else from_json(row[6]),
    )


class _Entry:
    """One ``enqueue`` call waiting for its group commit."""

    __slots__ = ("done", "error", "lead", "record", "result")

    def __init__(self, record: DispatchRecord) -> None:
        self.record = record
        self.result: DispatchRecord | None = None
        self.error: BaseException | None = None
        self.lead = False  # woken to commit the next batch rather than with a result
        self.done = anyio.Event()


class SQLiteDispatchStore:
    """Dispatches in a SQLite file (``path``, or a :class:`SQLiteDatabase` to share its
    connection). ``clock`` (seconds since the epoch) is the store's time, injectable so leases can
    be tested without sleeping. ``wait_changed`` polls the file every ``poll_interval`` seconds for
    other connections' commits (``PRAGMA data_version``); this object's own writes wake it at once.
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
        self._waiting: list[_Entry] = []
        self._committing = False

    def _now(self) -> datetime:
        return from_us(round(self._clock() * 1_000_000))

    # -- transaction bodies (worker thread, inside one transaction) ----------------------------------

    @staticmethod
    def _load(conn: sqlite3.Connection, dispatch_id: str) -> tuple[DispatchRecord, int | None] | None:
        row = conn.execute(f"{_SELECT} WHERE dispatch_id=?", (dispatch_id,)).fetchone()
        return None if row is None else (_record(row), row[18])

    @staticmethod
    def _save(conn: sqlite3.Connection, new: DispatchRecord, was_head: bool) -> None:
        """Write ``new``'s mutable columns; a finished head hands ``ready_at`` to its successor."""
        ready = ready_at_us(new) if was_head and not new.finished else None
        conn.execute(
            "UPDATE dispatch_items SET status=?, available_at=?, updated_at=?, attempts=?, worker=?, "
            "lease_expires=?, cancel_requested=?, outcome=?, ready_at=? WHERE dispatch_id=?",
            (
                new.status,
                to_us(new.available_at),
                to_us(new.updated_at),
                new.attempts,
                new.worker,
                _us(new.lease_expires),
                new.cancel_requested,
                None if new.outcome is None else new.outcome.model_dump_json().encode(),
                ready,
                new.dispatch_id,
            ),
        )
        if was_head and new.finished:
            row = conn.execute(
                f"{_SELECT} WHERE agent=? AND instance_id=? AND session_id=? AND {_PENDING} "
                "ORDER BY position LIMIT 1",
                new.target,
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE dispatch_items SET ready_at=? WHERE position=?",
                    (ready_at_us(_record(row)), row[17]),
                )

    @staticmethod
    def _close_attempt(
        conn: sqlite3.Connection,
        record: DispatchRecord,
        now: datetime,
        status: AttemptStatus,
        error: dict[str, Any] | None,
    ) -> None:
        conn.execute(
            "UPDATE dispatch_attempts SET ended_at=?, status=?, error=? WHERE dispatch_id=? AND number=?",
            (
                to_us(now),
                status,
                None if error is None else _json(error),
                record.dispatch_id,
                record.attempts,
            ),
        )

    def _insert(self, conn: sqlite3.Connection, record: DispatchRecord, now: datetime) -> DispatchRecord:
        if record.key is not None:
            row = conn.execute(f"{_SELECT} WHERE key=?", (record.key,)).fetchone()
            if row is not None:
                return key_conflict(_record(row), record)
        stored = accepted(record, now)
        head = conn.execute(
            f"SELECT 1 FROM dispatch_items WHERE agent=? AND instance_id=? AND session_id=? AND {_PENDING} "
            "LIMIT 1",
            stored.target,
        ).fetchone()
        row = _row(stored, None if head else ready_at_us(stored))
        try:
            conn.execute(_INSERT, row)
        except sqlite3.IntegrityError:  # the one unique column not checked above
            raise ConfigError(
                f"dispatch id {record.dispatch_id!r} exists already; leave it to the default"
            ) from None
        return stored

    def _commit(self, batch: builtins.list[_Entry]) -> None:
        """One transaction for a batch of enqueues; a bad record fails only its own call."""

        def write(conn: sqlite3.Connection) -> None:
            now = self._now()
            for entry in batch:
                try:
                    entry.result = self._insert(conn, entry.record, now)
                except PyFlueError as exc:
                    entry.error = exc

        try:
            self.db.call(write)
        except BaseException as exc:
            for entry in batch:
                entry.result, entry.error = None, exc

    def _claim(
        self, conn: sqlite3.Connection, worker: str, lease_seconds: float, limit: int
    ) -> tuple[builtins.list[DispatchRecord], bool]:
        now = self._now()
        taken: builtins.list[DispatchRecord] = []
        ended = False
        while len(taken) < limit:
            rows = conn.execute(
                f"{_SELECT} WHERE ready_at <= ? ORDER BY ready_at, position LIMIT ?",
                (to_us(now), limit - len(taken)),
            ).fetchall()
            moved = False
            for row in rows:
                head = _record(row)
                if head.status == "running":
                    final, error = taken_over(head, now)
                    self._close_attempt(conn, head, now, "crashed", error)
                    if final is not None:
                        self._save(conn, final, was_head=True)
                        moved = ended = True  # the session's next item may be claimable now
                        continue
                running, attempt = claimed(head, worker, now, lease_seconds)
                self._save(conn, running, was_head=True)
                conn.execute(
                    f"INSERT INTO dispatch_attempts ({_ATTEMPT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, NULL, 'running', NULL)",
                    (attempt.dispatch_id, attempt.number, attempt.worker, to_us(attempt.started_at)),
                )
                taken.append(running)
            if not moved:
                break
        return taken, ended

    def _end(
        self,
        conn: sqlite3.Connection,
        dispatch_id: str,
        worker: str,
        transition: Callable[[DispatchRecord, datetime], DispatchRecord],
        error: dict[str, Any] | None,
    ) -> DispatchRecord | None:
        loaded = self._load(conn, dispatch_id)
        if loaded is None or not holds(loaded[0], worker):
            return None
        record = loaded[0]
        now = self._now()
        new = transition(record, now)
        self._close_attempt(conn, record, now, attempt_end(new), error)
        self._save(conn, new, was_head=True)
        return new

    def _cancel(
        self, conn: sqlite3.Connection, dispatch_id: str, reason: str
    ) -> tuple[DispatchRecord, bool] | None:
        loaded = self._load(conn, dispatch_id)
        if loaded is None:
            return None
        record, ready = loaded
        now = self._now()
        if record.status == "queued":
            new = cancelled(record, now, reason)
        elif record.status == "running" and record.lease_expires is not None and record.lease_expires <= now:
            self._close_attempt(conn, record, now, "crashed", taken_over(record, now)[1])
            new = cancelled(record, now, reason)
        elif record.status == "running" and record.cancel_requested is None:
            new = record.model_copy(update={"cancel_requested": reason, "updated_at": now})
        else:
            return record, False
        self._save(conn, new, was_head=ready is not None)
        return new, True

    # -- the DispatchStore protocol -----------------------------------------------------------------

    async def enqueue(self, record: DispatchRecord) -> DispatchRecord:
        entry = _Entry(record)
        self._waiting.append(entry)
        if self._committing:
            try:
                await entry.done.wait()
            except BaseException:
                if entry in self._waiting:  # not committed, and now it never will be
                    self._waiting.remove(entry)
                if entry.lead:
                    await self._lead()  # the other callers wait for this one to commit their batch
                raise
            if entry.lead:
                await self._lead()
        else:
            self._committing = True
            await self._lead()
        if entry.error is not None:
            raise entry.error
        assert entry.result is not None
        return entry.result

    async def _lead(self) -> None:
        """Commit every waiting call in one transaction, then wake one caller that arrived
        meanwhile to commit the next batch (so no caller commits for others forever)."""
        with anyio.CancelScope(shield=True):
            batch, self._waiting = self._waiting, []
            if batch:
                await anyio.to_thread.run_sync(self._commit, batch)
                for entry in batch:
                    entry.done.set()
            if self._waiting:
                self._waiting[0].lead = True
                self._waiting[0].done.set()
            else:
                self._committing = False
            if any(entry.result is not None for entry in batch):
                self._signal.notify()

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> builtins.list[DispatchRecord]:
        check_lease(worker, lease_seconds, limit)
        taken, ended = await self.db.run(lambda conn: self._claim(conn, worker, lease_seconds, limit))
        if taken or ended:
            self._signal.notify()
        return taken

    async def renew(self, dispatch_id: str, worker: str, lease_seconds: float) -> bool:
        check_lease(worker, lease_seconds)

        def write(conn: sqlite3.Connection) -> bool:
            now = to_us(self._now())
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
        new = await self.db.run(lambda conn: self._end(conn, dispatch_id, worker, transition, error))
        if new is not None:
            self._signal.notify()
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
        result = await self.db.run(lambda conn: self._cancel(conn, dispatch_id, reason))
        if result is None:
            return None
        if result[1]:
            self._signal.notify()
        return result[0]

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        loaded = await self.db.run(lambda conn: self._load(conn, dispatch_id), write=False)
        return None if loaded is None else loaded[0]

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
        return DispatchPage([_record(r) for r in rows], encode_cursor(rows[-1][17]) if more else None)

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM dispatch_attempts WHERE dispatch_id=? ORDER BY number",
                (dispatch_id,),
            ).fetchall(),
            write=False,
        )
        return [_attempt(r) for r in rows]

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

    async def aclose(self) -> None:
        """Wake waiters, and close the database if this store opened it (not one it was given)."""
        self._signal.notify()
        if self._owns_db:
            await self.db.aclose()
