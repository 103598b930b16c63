"""The PostgreSQL dispatch store: items, attempts and delivery events, claimed by workers on any host.

The transitions are :mod:`pyflue.stores.dispatches`'s pure functions, as in every store; this module
decides only how rows are found and locked:

* **Claims** read the session heads that are ready (``ready_at <= now``: a queued head once
  available, a running head once its lease expired) in order, with ``FOR UPDATE SKIP LOCKED``: claimers
  on many hosts each take different heads and never wait for each other.
* **Per-session order.** Only a session's head carries ``ready_at``. Whatever hands the head on — an
  enqueue into an idle session, a head that finishes — first takes the session's advisory lock
  (``pg_advisory_xact_lock``), so under READ COMMITTED two concurrent enqueues never both become the
  head, and an item enqueued while the head finishes is always found as the next head.
* **Times** are the server's clock (``clock_timestamp()``), the one clock every host shares, unless a
  ``clock`` is given (tests).
* **Change notification.** Every write that can make work claimable or finish an item notifies the
  dispatch topic in its transaction; :meth:`PostgresDispatchStore.wait_changed` wakes on it at commit.

Concurrent ``enqueue`` calls on one store object share a transaction (group commit): the first caller
commits everything queued so far, and each call returns once its own row is committed.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import psycopg.errors
from pydantic_core import from_json, to_json

from ...errors import ConfigError, NotFoundError, PyFlueError
from ...events import Event
from ..dispatches import (
    Attempt,
    AttemptStatus,
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
from .interface import Conn, Database
from .schema import DISPATCH_TOPIC, NOW_US, stable_hash

if TYPE_CHECKING:
    from .notify import Watch

__all__ = ["PostgresDispatchStore"]

_COLUMNS = (
    "dispatch_id, agent, instance_id, session_id, input, key, status, accepted_at, available_at, "
    "updated_at, attempts, max_attempts, worker, lease_expires, cancel_requested, outcome, traceparent"
)
_SELECT = f"SELECT {_COLUMNS}, position, ready_at FROM dispatch_items"
_PENDING = "status IN ('queued', 'running')"
_SAME_SESSION = "agent = %s AND instance_id = %s AND session_id = %s"
# A new item is its session's head (and gets ready_at) when no earlier item is pending; a unique
# dispatch id or key already taken inserts nothing.
_INSERT = (
    f"INSERT INTO dispatch_items ({_COLUMNS}, ready_at) "
    f"SELECT {', '.join(['%s'] * 17)}, "
    f"CASE WHEN EXISTS (SELECT 1 FROM dispatch_items WHERE {_SAME_SESSION} AND {_PENDING}) "
    "THEN NULL ELSE %s END "
    "ON CONFLICT DO NOTHING RETURNING position"
)
_ATTEMPT_COLUMNS = "dispatch_id, number, worker, started_at, ended_at, status, error"
#: A task's view of the dispatch topic at its last read: ``_UNWATCHED`` when it read before this
#: store listened.
_UNWATCHED = -1


def _json(value: Any) -> bytes:
    return to_json(value, fallback=repr, inf_nan_mode="null", bytes_mode="base64")


def _us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def _record(row: Sequence[Any]) -> DispatchRecord:
    return DispatchRecord(
        dispatch_id=row[0],
        agent=row[1],
        instance_id=row[2],
        session_id=row[3],
        input=from_json(bytes(row[4])),
        key=row[5],
        status=row[6],
        accepted_at=from_us(row[7]),
        available_at=from_us(row[8]),
        updated_at=from_us(row[9]),
        attempts=row[10],
        max_attempts=row[11],
        worker=row[12],
        lease_expires=None if row[13] is None else from_us(row[13]),
        cancel_requested=row[14],
        outcome=None if row[15] is None else DispatchOutcome.model_validate_json(bytes(row[15])),
        traceparent=row[16],
    )


def _attempt(row: Sequence[Any]) -> Attempt:
    return Attempt(
        dispatch_id=row[0],
        number=row[1],
        worker=row[2],
        started_at=from_us(row[3]),
        ended_at=None if row[4] is None else from_us(row[4]),
        status=row[5],
        error=None if row[6] is None else from_json(bytes(row[6])),
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


class PostgresDispatchStore:
    """The :class:`~pyflue.stores.dispatches.DispatchStore` of a :class:`PostgresDatabase`.

    ``clock`` (seconds since the epoch) replaces the server's clock, for tests of leases without
    sleeping; leave it out in production, where hosts' clocks differ. ``wait_changed`` is woken by
    ``NOTIFY`` at the commit of any change, from any process (no polling). Closing the store wakes
    its waiters and leaves the database open (its owner closes it).
    """

    def __init__(self, db: Database, *, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self._clock = clock
        self._lock_prefix = f"{db.schema}\x1fdispatch\x1f"
        self._watch: Watch | None = None
        self._seen: ContextVar[int | None] = ContextVar(f"pyflue-dispatch-seen-{id(self)}", default=None)
        self._waiting: list[_Entry] = []
        self._committing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresDispatchStore({self.db!r})"

    # -- transaction bodies (worker thread, inside one transaction) ----------------------------------

    def _now(self, conn: Conn) -> datetime:
        if self._clock is not None:
            return from_us(round(self._clock() * 1_000_000))
        row = conn.execute(f"SELECT {NOW_US}").fetchone()
        assert row is not None
        return from_us(int(row[0]))

    def _notify(self, conn: Conn) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (self.db.channel, DISPATCH_TOPIC))

    def _lock_sessions(self, conn: Conn, targets: builtins.list[tuple[str, str, str]]) -> None:
        """Take the sessions' advisory locks (until commit), in one global order."""
        keys = sorted({stable_hash(self._lock_prefix + "\x1f".join(t)) for t in targets})
        conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))

    @staticmethod
    def _load(conn: Conn, dispatch_id: str) -> tuple[DispatchRecord, int | None] | None:
        row = conn.execute(f"{_SELECT} WHERE dispatch_id = %s FOR UPDATE", (dispatch_id,)).fetchone()
        return None if row is None else (_record(row), row[18])

    def _save(self, conn: Conn, new: DispatchRecord, was_head: bool) -> None:
        """Write ``new``'s mutable columns; a finished head hands ``ready_at`` to its successor."""
        ready = ready_at_us(new) if was_head and not new.finished else None
        conn.execute(
            "UPDATE dispatch_items SET status = %s, available_at = %s, updated_at = %s, attempts = %s, "
            "worker = %s, lease_expires = %s, cancel_requested = %s, outcome = %s, ready_at = %s "
            "WHERE dispatch_id = %s",
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
        if not (was_head and new.finished):
            return
        self._lock_sessions(conn, [new.target])
        while True:
            row = conn.execute(
                f"{_SELECT} WHERE {_SAME_SESSION} AND {_PENDING} ORDER BY position LIMIT 1", new.target
            ).fetchone()
            if row is None:
                return
            # Conditional: an item cancelled meanwhile (its row was locked) is skipped.
            handed = conn.execute(
                f"UPDATE dispatch_items SET ready_at = %s WHERE position = %s AND {_PENDING} RETURNING 1",
                (ready_at_us(_record(row)), row[17]),
            ).fetchone()
            if handed is not None:
                return

    @staticmethod
    def _close_attempt(
        conn: Conn, record: DispatchRecord, now: datetime, status: AttemptStatus, error: dict[str, Any] | None
    ) -> None:
        conn.execute(
            "UPDATE dispatch_attempts SET ended_at = %s, status = %s, error = %s "
            "WHERE dispatch_id = %s AND number = %s",
            (
                to_us(now),
                status,
                None if error is None else _json(error),
                record.dispatch_id,
                record.attempts,
            ),
        )

    def _commit(self, batch: builtins.list[_Entry]) -> None:
        """One transaction for a batch of enqueues; a bad record fails only its own call."""

        def write(conn: Conn) -> None:
            now = self._now(conn)
            rows: builtins.list[tuple[Any, ...]] = []
            kept: builtins.list[tuple[_Entry, DispatchRecord]] = []
            for entry in batch:
                try:
                    stored = accepted(entry.record, now)
                except PyFlueError as exc:
                    entry.error = exc
                    continue
                kept.append((entry, stored))
                rows.append(_row(stored))
            if not kept:
                return
            self._lock_sessions(conn, [stored.target for _, stored in kept])
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT, rows, returning=True)
                inserted: builtins.list[bool] = []
                while True:
                    inserted.append(cursor.fetchone() is not None)
                    if not cursor.nextset():
                        break
            for (entry, stored), done in zip(kept, inserted, strict=True):
                if done:
                    entry.result = stored
                    continue
                try:
                    entry.result = self._conflict(conn, stored)
                except PyFlueError as exc:
                    entry.error = exc
            if any(done for done in inserted):
                self._notify(conn)

        try:
            self.db.call(write)
        except BaseException as exc:
            for entry in batch:
                entry.result, entry.error = None, exc

    @staticmethod
    def _conflict(conn: Conn, record: DispatchRecord) -> DispatchRecord:
        """The first record of a reused key, or why ``record`` could not be inserted."""
        if record.key is not None:
            row = conn.execute(f"{_SELECT} WHERE key = %s", (record.key,)).fetchone()
            if row is not None:
                return key_conflict(_record(row), record)
        raise ConfigError(f"dispatch id {record.dispatch_id!r} exists already; leave it to the default")

    def _claim(
        self, conn: Conn, worker: str, lease_seconds: float, limit: int
    ) -> tuple[builtins.list[DispatchRecord], bool]:
        now = self._now(conn)
        taken: builtins.list[DispatchRecord] = []
        ended = False
        while len(taken) < limit:
            rows = conn.execute(
                f"{_SELECT} WHERE ready_at <= %s ORDER BY ready_at, position LIMIT %s FOR UPDATE SKIP LOCKED",
                (to_us(now), limit - len(taken)),
            ).fetchall()
            if not rows:
                break
            # Stamped after the row locks: later than the commit of the item this claim follows.
            now = self._now(conn)
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
                    "VALUES (%s, %s, %s, %s, NULL, 'running', NULL)",
                    (attempt.dispatch_id, attempt.number, attempt.worker, to_us(attempt.started_at)),
                )
                taken.append(running)
            if not moved:
                break
        if taken or ended:
            self._notify(conn)
        return taken, ended

    def _end(
        self,
        conn: Conn,
        dispatch_id: str,
        worker: str,
        transition: Callable[[DispatchRecord, datetime], DispatchRecord],
        error: dict[str, Any] | None,
    ) -> DispatchRecord | None:
        loaded = self._load(conn, dispatch_id)
        if loaded is None or not holds(loaded[0], worker):
            return None
        record = loaded[0]
        now = self._now(conn)
        new = transition(record, now)
        self._close_attempt(conn, record, now, attempt_end(new), error)
        self._save(conn, new, was_head=True)
        self._notify(conn)
        return new

    def _cancel(self, conn: Conn, dispatch_id: str, reason: str) -> DispatchRecord | None:
        loaded = self._load(conn, dispatch_id)
        if loaded is None:
            return None
        record, ready = loaded
        now = self._now(conn)
        if record.status == "queued":
            new = cancelled(record, now, reason)
        elif record.status == "running" and record.lease_expires is not None and record.lease_expires <= now:
            self._close_attempt(conn, record, now, "crashed", taken_over(record, now)[1])
            new = cancelled(record, now, reason)
        elif record.status == "running" and record.cancel_requested is None:
            new = record.model_copy(update={"cancel_requested": reason, "updated_at": now})
        else:
            return record
        self._save(conn, new, was_head=ready is not None)
        self._notify(conn)
        return new

    # -- reads and change notification ------------------------------------------------------------

    def _mark_read(self) -> None:
        """Remember, for this task, which changes its next ``wait_changed`` need not wait for."""
        watch = self._watch
        self._seen.set(_UNWATCHED if watch is None else self.db.notifier.count(watch.topic))

    async def wait_changed(self, timeout: float) -> bool:
        if self._closed:
            return True
        if self._watch is None:
            watch = await self.db.watch(DISPATCH_TOPIC)
            if self._watch is None:
                self._watch = watch
            else:
                watch.close()
        seen = self._seen.get()
        if seen == _UNWATCHED:
            self._seen.set(self.db.notifier.count(DISPATCH_TOPIC))
            return True  # this task read before changes were watched: it may have missed one
        if seen is None:
            seen = self.db.notifier.count(DISPATCH_TOPIC)
        count = await self.db.notifier.wait_topic(DISPATCH_TOPIC, seen, timeout)
        if count is None:
            return False
        self._seen.set(count)
        return True

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

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> builtins.list[DispatchRecord]:
        check_lease(worker, lease_seconds, limit)
        self._mark_read()
        taken, _ = await self.db.run(lambda conn: self._claim(conn, worker, lease_seconds, limit))
        return taken

    async def renew(self, dispatch_id: str, worker: str, lease_seconds: float) -> bool:
        check_lease(worker, lease_seconds)

        def write(conn: Conn) -> bool:
            now = to_us(self._now(conn))
            expires = now + round(lease_seconds * 1_000_000)
            row = conn.execute(
                "UPDATE dispatch_items SET lease_expires = %s, ready_at = %s, updated_at = %s "
                "WHERE dispatch_id = %s AND status = 'running' AND worker = %s RETURNING 1",
                (expires, expires, now, dispatch_id, worker),
            ).fetchone()
            return row is not None

        return await self.db.run(write)

    async def complete(
        self, dispatch_id: str, worker: str, outcome: DispatchOutcome
    ) -> DispatchRecord | None:
        return await self.db.run(
            lambda conn: self._end(conn, dispatch_id, worker, lambda r, now: completed(r, now, outcome), None)
        )

    async def fail(
        self, dispatch_id: str, worker: str, error: dict[str, Any], retry_after: float | None
    ) -> DispatchRecord | None:
        return await self.db.run(
            lambda conn: self._end(
                conn, dispatch_id, worker, lambda r, now: failed(r, now, error, retry_after), error
            )
        )

    async def finish_cancelled(self, dispatch_id: str, worker: str) -> DispatchRecord | None:
        return await self.db.run(lambda conn: self._end(conn, dispatch_id, worker, cancelled, None))

    async def cancel(self, dispatch_id: str, reason: str) -> DispatchRecord | None:
        return await self.db.run(lambda conn: self._cancel(conn, dispatch_id, reason))

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        self._mark_read()
        row = await self.db.run(
            lambda conn: conn.execute(f"{_SELECT} WHERE dispatch_id = %s", (dispatch_id,)).fetchone()
        )
        return None if row is None else _record(row)

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
                where.append(f"{column} = %s")
                args.append(value)
        if cursor is not None:
            where.append("position < %s")
            args.append(decode_cursor(cursor))
        args.append(limit + 1)
        sql = f"{_SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY position DESC LIMIT %s"
        self._mark_read()
        rows = await self.db.run(lambda conn: conn.execute(sql, args).fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        return DispatchPage([_record(r) for r in rows], encode_cursor(rows[-1][17]) if more else None)

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM dispatch_attempts WHERE dispatch_id = %s ORDER BY number",
                (dispatch_id,),
            ).fetchall()
        )
        return [_attempt(r) for r in rows]

    async def append_events(self, dispatch_id: str, events: Sequence[Event]) -> None:
        batch = list(events)

        def write(conn: Conn) -> None:
            if (
                conn.execute("SELECT 1 FROM dispatch_items WHERE dispatch_id = %s", (dispatch_id,)).fetchone()
                is None
            ):
                raise NotFoundError(
                    f"no dispatch {dispatch_id!r}; append events only to an enqueued dispatch"
                )
            row = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM dispatch_events WHERE dispatch_id = %s", (dispatch_id,)
            ).fetchone()
            check_events(dispatch_id, batch, int(row[0]) if row else 0)
            if not batch:
                return
            try:
                conn.execute(
                    "INSERT INTO dispatch_events (dispatch_id, seq, event) "
                    "SELECT %s, * FROM unnest(%s::bigint[], %s::bytea[])",
                    (dispatch_id, [e.seq for e in batch], [encode_event(e) for e in batch]),
                )
            except psycopg.errors.UniqueViolation:
                raise ConfigError(
                    f"event seq of dispatch {dispatch_id!r} collided with a concurrent writer's; "
                    "seq must increase strictly per dispatch"
                ) from None
            self._notify(conn)

        await self.db.run(write)

    async def read_events(
        self, dispatch_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> builtins.list[Event]:
        self._mark_read()
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT event FROM dispatch_events WHERE dispatch_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (dispatch_id, after_seq, None if limit is None else max(limit, 0)),
            ).fetchall()
        )
        return [decode_event(bytes(blob)) for (blob,) in rows]

    async def aclose(self) -> None:
        """Wake this store's waiters; the database stays open (its owner closes it)."""
        self._closed = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()


def _row(record: DispatchRecord) -> tuple[Any, ...]:
    """Parameters of :data:`_INSERT` for a new record."""
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
        *record.target,
        to_us(record.available_at),
    )
