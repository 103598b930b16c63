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

Every write that finishes an item or adds delivery events also notifies the item's own topic, which
:meth:`PostgresDispatchStore.watch` follows (``wait_dispatch``, a delivery's event stream).

Concurrent ``enqueue`` calls on one store object share a transaction (group commit). The transaction
bodies and the row form are :mod:`pyflue.stores.dispatch_rows`'s, shared with SQLite.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar

import psycopg.errors

from ...errors import ConfigError, NotFoundError, PyFlueError
from ...events import Event
from ..changes import Watch
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
from .interface import Conn, Database
from .schema import DISPATCH_TOPIC, NOW_US, stable_hash

__all__ = ["PostgresDispatchStore"]

T = TypeVar("T")

_SELECT = f"SELECT {COLUMNS}, position, ready_at FROM dispatch_items"
_SAME_SESSION = "agent = %s AND instance_id = %s AND session_id = %s"
# A new item is its session's head (and gets ready_at) when no earlier item is pending; a unique
# dispatch id or key already taken inserts nothing.
_INSERT = (
    f"INSERT INTO dispatch_items ({COLUMNS}, ready_at) "
    f"SELECT {', '.join(['%s'] * 17)}, "
    f"CASE WHEN EXISTS (SELECT 1 FROM dispatch_items WHERE {_SAME_SESSION} AND {PENDING}) "
    "THEN NULL ELSE %s END "
    "ON CONFLICT DO NOTHING RETURNING position"
)
#: A task's view of the dispatch topic at its last read: ``_UNWATCHED`` when it read before this
#: store listened.
_UNWATCHED = -1


def _item_topic(dispatch_id: str) -> str:
    """The notification topic of one dispatch (a digest: ids are any text). ``i`` keeps it apart
    from the run topics (``r…``) and :data:`DISPATCH_TOPIC`."""
    return "i" + hashlib.md5(dispatch_id.encode()).hexdigest()


class _Table:
    """The store's statements in one transaction (:class:`~pyflue.stores.dispatch_rows.Table`)."""

    def __init__(self, store: PostgresDispatchStore, conn: Conn) -> None:
        self.store = store
        self.conn = conn

    def now(self) -> datetime:
        return self.store._now(self.conn)

    def notify(self, *topics: str) -> None:
        self.conn.execute(
            "SELECT pg_notify(%s, t) FROM unnest(%s::text[]) AS t", (self.store.db.channel, list(topics))
        )

    def lock_sessions(self, targets: builtins.list[tuple[str, str, str]]) -> None:
        """Take the sessions' advisory locks (until commit), in one global order."""
        prefix = self.store.lock_prefix
        keys = sorted({stable_hash(prefix + "\x1f".join(t)) for t in targets})
        self.conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))

    def heads(self, now: datetime, limit: int) -> builtins.list[DispatchRecord]:
        rows = self.conn.execute(
            f"{_SELECT} WHERE ready_at <= %s ORDER BY ready_at, position LIMIT %s FOR UPDATE SKIP LOCKED",
            (to_us(now), limit),
        ).fetchall()
        return [record_of(row) for row in rows]

    def load(self, dispatch_id: str) -> tuple[DispatchRecord, bool] | None:
        row = self.conn.execute(f"{_SELECT} WHERE dispatch_id = %s FOR UPDATE", (dispatch_id,)).fetchone()
        return None if row is None else (record_of(row), row[18] is not None)

    def save(self, new: DispatchRecord, was_head: bool) -> None:
        ready = ready_at_us(new) if was_head and not new.finished else None
        self.conn.execute(
            "UPDATE dispatch_items SET status = %s, available_at = %s, updated_at = %s, attempts = %s, "
            "worker = %s, lease_expires = %s, cancel_requested = %s, outcome = %s, ready_at = %s "
            "WHERE dispatch_id = %s",
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
            self.notify(_item_topic(new.dispatch_id))
        if not (was_head and new.finished):
            return
        self.lock_sessions([new.target])
        while True:
            row = self.conn.execute(
                f"{_SELECT} WHERE {_SAME_SESSION} AND {PENDING} ORDER BY position LIMIT 1", new.target
            ).fetchone()
            if row is None:
                return
            # Conditional: an item cancelled meanwhile (its row was locked) is skipped.
            handed = self.conn.execute(
                f"UPDATE dispatch_items SET ready_at = %s WHERE position = %s AND {PENDING} RETURNING 1",
                (ready_at_us(record_of(row)), row[17]),
            ).fetchone()
            if handed is not None:
                return

    def add_attempt(self, attempt: Attempt) -> None:
        self.conn.execute(
            f"INSERT INTO dispatch_attempts ({ATTEMPT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, NULL, 'running', NULL)",
            (attempt.dispatch_id, attempt.number, attempt.worker, to_us(attempt.started_at)),
        )

    def close_attempt(
        self, record: DispatchRecord, now: datetime, status: AttemptStatus, error: dict[str, Any] | None
    ) -> None:
        self.conn.execute(
            "UPDATE dispatch_attempts SET ended_at = %s, status = %s, error = %s "
            "WHERE dispatch_id = %s AND number = %s",
            (
                to_us(now),
                status,
                None if error is None else json_bytes(error),
                record.dispatch_id,
                record.attempts,
            ),
        )

    def conflict(self, record: DispatchRecord) -> DispatchRecord:
        """The first record of a reused key, or why ``record`` could not be inserted."""
        if record.key is not None:
            row = self.conn.execute(f"{_SELECT} WHERE key = %s", (record.key,)).fetchone()
            if row is not None:
                return key_conflict(record_of(row), record)
        raise ConfigError(f"dispatch id {record.dispatch_id!r} exists already; leave it to the default")


class PostgresDispatchStore:
    """The :class:`~pyflue.stores.dispatches.DispatchStore` of a :class:`PostgresDatabase`.

    ``clock`` (seconds since the epoch) replaces the server's clock, for tests of leases without
    sleeping; leave it out in production, where hosts' clocks differ. ``wait_changed`` and ``watch``
    are woken by ``NOTIFY`` at the commit of any change, from any process (no polling). Closing the
    store wakes its waiters and leaves the database open (its owner closes it).
    """

    def __init__(self, db: Database, *, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self._clock = clock
        self.lock_prefix = f"{db.schema}\x1fdispatch\x1f"
        self._watch: Watch | None = None
        self._seen: ContextVar[int | None] = ContextVar(f"pyflue-dispatch-seen-{id(self)}", default=None)
        self._group = GroupCommit(self._commit)
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresDispatchStore({self.db!r})"

    def _now(self, conn: Conn) -> datetime:
        if self._clock is not None:
            return from_us(round(self._clock() * 1_000_000))
        row = conn.execute(f"SELECT {NOW_US}").fetchone()
        assert row is not None
        return from_us(int(row[0]))

    async def _write(self, body: Callable[[_Table], T], changed: Callable[[T], bool]) -> T:
        """``body`` in one transaction, notifying the dispatch topic when ``changed(result)``."""

        def work(conn: Conn) -> T:
            table = _Table(self, conn)
            result = body(table)
            if changed(result):
                table.notify(DISPATCH_TOPIC)
            return result

        return await self.db.run(work)

    def _commit(
        self, records: builtins.list[DispatchRecord]
    ) -> builtins.list[DispatchRecord | BaseException]:
        """One transaction for a batch of enqueues; a bad record fails only its own call."""

        def write(conn: Conn) -> builtins.list[DispatchRecord | BaseException]:
            table = _Table(self, conn)
            now = table.now()
            results: builtins.list[DispatchRecord | BaseException] = []
            kept: builtins.list[tuple[int, DispatchRecord]] = []
            for record in records:
                try:
                    stored = accepted(record, now)
                except PyFlueError as exc:
                    results.append(exc)
                    continue
                kept.append((len(results), stored))
                results.append(stored)
            if not kept:
                return results
            table.lock_sessions([stored.target for _, stored in kept])
            with conn.cursor() as cursor:
                cursor.executemany(
                    _INSERT,
                    [(*record_values(r), *r.target, to_us(r.available_at)) for _, r in kept],
                    returning=True,
                )
                inserted: builtins.list[bool] = []
                while True:
                    inserted.append(cursor.fetchone() is not None)
                    if not cursor.nextset():
                        break
            for (index, stored), done in zip(kept, inserted, strict=True):
                if not done:
                    try:
                        results[index] = table.conflict(stored)
                    except PyFlueError as exc:
                        results[index] = exc
            if any(inserted):
                table.notify(DISPATCH_TOPIC)
            return results

        return self.db.call(write)

    # -- reads and change notification ------------------------------------------------------------

    def _mark_read(self) -> None:
        """Remember, for this task, which changes its next ``wait_changed`` need not wait for."""
        watch = self._watch
        self._seen.set(_UNWATCHED if watch is None else self.db.notifier.topics.count(watch.topic))

    async def wait_changed(self, timeout: float) -> bool:
        if self._closed:
            return True
        if self._watch is None:
            watch = await self.db.watch(DISPATCH_TOPIC)
            if self._watch is None:
                self._watch = watch
            else:
                watch.close()
        topics = self.db.notifier.topics
        seen = self._seen.get()
        if seen == _UNWATCHED:
            self._seen.set(topics.count(DISPATCH_TOPIC))
            return True  # this task read before changes were watched: it may have missed one
        if seen is None:
            seen = topics.count(DISPATCH_TOPIC)
        count = await topics.wait_topic(DISPATCH_TOPIC, seen, timeout)
        if count is None:
            return False
        self._seen.set(count)
        return True

    async def watch(self, dispatch_id: str) -> Watch:
        """A watch of one dispatch, woken by ``NOTIFY`` when its events or final status are
        committed, from any process or host."""
        return await self.db.watch(_item_topic(dispatch_id))

    # -- the DispatchStore protocol -----------------------------------------------------------------

    async def enqueue(self, record: DispatchRecord) -> DispatchRecord:
        return await self._group.enqueue(record)

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> builtins.list[DispatchRecord]:
        check_lease(worker, lease_seconds, limit)
        self._mark_read()
        taken, _ = await self._write(
            lambda table: claim_in(table, worker, lease_seconds, limit),
            lambda result: bool(result[0] or result[1]),
        )
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

    async def _finish(
        self,
        dispatch_id: str,
        worker: str,
        transition: Callable[[DispatchRecord, datetime], DispatchRecord],
        error: dict[str, Any] | None = None,
    ) -> DispatchRecord | None:
        return await self._write(
            lambda table: end_in(table, dispatch_id, worker, transition, error), lambda new: new is not None
        )

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
        result = await self._write(
            lambda table: cancel_in(table, dispatch_id, reason),
            lambda result: result is not None and result[1],
        )
        return None if result is None else result[0]

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        self._mark_read()
        row = await self.db.run(
            lambda conn: conn.execute(f"{_SELECT} WHERE dispatch_id = %s", (dispatch_id,)).fetchone()
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
        return DispatchPage([record_of(r) for r in rows], encode_cursor(rows[-1][17]) if more else None)

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM dispatch_attempts WHERE dispatch_id = %s ORDER BY number",
                (dispatch_id,),
            ).fetchall()
        )
        return [attempt_of(r) for r in rows]

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
            _Table(self, conn).notify(DISPATCH_TOPIC, _item_topic(dispatch_id))

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
