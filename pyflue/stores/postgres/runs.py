"""Workflow runs in PostgreSQL: one row per run, its event log in chunks of consecutive events, and
ownership by lease.

A process id means nothing on another host, so a running run is owned by a **lease** judged by the
server's clock: ``create_run`` takes it for ``run_lease`` seconds, and the owner renews it with every
event batch it writes and with :meth:`PostgresRunStore.heartbeat` (which also returns a pending cancel
request, so the owner's cancel poll is its heartbeat). A run whose lease expired is marked
``interrupted`` — a ``run_end`` appended after its last event, in the same transaction — by the first
read that sees it, from any process on any host. An owner that comes back after that finds its run
ended: its later events are not stored, its final record does not replace ``interrupted``, and its
heartbeat tells it to stop.

Events of one run get a strictly increasing ``seq`` whoever writes them: each write locks the run's row
and refuses a batch that does not start after the stored ``last_seq``. Every write that changes a run
notifies its topic, so followers (:meth:`PostgresRunStore.watch`) wake at its commit.

A running run also has an **owner token**, made by the store object that created or reopened it (a
resumed run's new attempt). The owner's writes name it, so once another process reopened an
interrupted run, an earlier owner that lost its lease (paused, partitioned) can neither extend the log
nor the journal, nor renew the lease: its heartbeat tells it to stop. The journal of a resumable run
(:meth:`PostgresRunStore.record_step`) is written in the same transaction as the events before it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from ...errors import ConfigError, InvalidIdError, NotFoundError, StoreError
from ...events import Event
from ...ids import new_ulid
from ...models.base import Usage
from ..dispatches import from_us, to_us
from ..run_encoding import chunks, interrupted_end, journal_row, unpack_events
from ..run_encoding import json_bytes as _json
from ..runs import (
    JournalStep,
    RunNotInterruptedError,
    RunPage,
    RunRecord,
    decode_cursor,
    encode_cursor,
    not_resumable,
)
from .interface import Conn, Database
from .schema import NOW_US, run_topic

if TYPE_CHECKING:
    from .notify import Watch

__all__ = ["DEFAULT_RUN_LEASE", "PostgresRunStore"]

#: Seconds a run's owner may stay silent before its run counts as interrupted.
DEFAULT_RUN_LEASE = 15.0
_COLUMNS = (
    "run_id, workflow, status, payload, result, error, usage, started_at, ended_at, duration_ms, "
    "owner_pid, owner_host"
)
_SELECT = f"SELECT {_COLUMNS}, status = 'running' AND lease_expires < {NOW_US}, position FROM runs"
_APPEND = f"""
WITH r AS (
    UPDATE runs SET last_seq = %(last)s, lease_expires = greatest(lease_expires, {NOW_US} + %(lease)s)
    WHERE run_id = %(run)s AND status = 'running' AND last_seq < %(first)s
        AND (%(token)s::text IS NULL OR owner_token = %(token)s)
    RETURNING run_id
), added AS (
    INSERT INTO run_events (run_id, seq, last_seq, events)
    SELECT %(run)s, c.first, c.last, c.blob
    FROM r, unnest(%(firsts)s::bigint[], %(lasts)s::bigint[], %(blobs)s::bytea[]) AS c(first, last, blob)
)
SELECT pg_notify(%(channel)s, %(topic)s) FROM r
"""
_HEARTBEAT = f"""
WITH current AS (SELECT status, cancel_reason, owner_token FROM runs WHERE run_id = %(run)s),
renewed AS (
    UPDATE runs SET lease_expires = {NOW_US} + %(lease)s
    WHERE run_id = %(run)s AND status = 'running' AND lease_expires < {NOW_US} + %(renew_below)s
        AND (%(token)s::text IS NULL OR owner_token = %(token)s)
    RETURNING 1
)
SELECT status, cancel_reason, owner_token FROM current
"""


def _chunks(events: Sequence[Event]) -> tuple[list[int], list[int], list[bytes]]:
    """``run_events`` columns for ``events``: one row per chunk of consecutive events."""
    rows = chunks(events)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _insert_events(conn: Conn, run_id: str, events: Sequence[Event]) -> None:
    """Rows of ``run_events`` for ``events`` (one per chunk), in one statement."""
    firsts, lasts, blobs = _chunks(events)
    conn.execute(
        "INSERT INTO run_events (run_id, seq, last_seq, events) "
        "SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[])",
        (run_id, firsts, lasts, blobs),
    )


def _check_order(run_id: str, events: Sequence[Event], last_seq: int) -> None:
    for event in events:
        if event.seq <= last_seq:
            raise ConfigError(
                f"event seq {event.seq} of run {run_id[:60]!r} does not follow {last_seq}; "
                "seq must increase strictly per run"
            )
        last_seq = event.seq


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or "\x00" in run_id:
        raise InvalidIdError(f"run id {run_id!r} must be text without NUL characters")
    return run_id


def _select_events(conn: Conn, run_id: str, after_seq: int, limit: int | None) -> list[Event]:
    """Events with ``seq > after_seq`` (at most ``limit``), from the chunk holding the next one."""
    rows = conn.execute(
        "SELECT events FROM run_events WHERE run_id = %(run)s AND seq >= coalesce("
        "(SELECT max(seq) FROM run_events WHERE run_id = %(run)s AND seq <= %(after)s + 1), 0) "
        "ORDER BY seq LIMIT %(limit)s",
        {"run": run_id, "after": after_seq, "limit": limit},
    ).fetchall()
    events = [e for (blob,) in rows for e in unpack_events(run_id, bytes(blob)) if e.seq > after_seq]
    return events if limit is None else events[:limit]


def _record(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow=row[1],
        status=row[2],
        payload=from_json(row[3]) if row[3] is not None else None,
        result=from_json(row[4]) if row[4] is not None else None,
        error=from_json(row[5]) if row[5] is not None else None,
        usage=Usage(**from_json(row[6])) if row[6] is not None else Usage(),
        started_at=from_us(row[7]),
        ended_at=from_us(row[8]) if row[8] is not None else None,
        duration_ms=row[9],
        owner_pid=row[10],
        owner_host=row[11],
    )


class PostgresRunStore:
    """The :class:`~pyflue.stores.runs.RunStore` of a :class:`PostgresDatabase`, shared by every
    process and host using it; ``run_lease``: seconds without a sign of life from a run's owner
    after which the run is ``interrupted``. Closing the store leaves the database open."""

    def __init__(self, db: Database, *, run_lease: float = DEFAULT_RUN_LEASE) -> None:
        if not 0 < run_lease < float("inf"):
            raise ConfigError(f"run_lease must be a positive number of seconds, not {run_lease!r}")
        self.db = db
        self.run_lease = run_lease
        self._lease_us = round(run_lease * 1_000_000)
        # The owner token of each run this object created or reopened and has not finished.
        self._tokens: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.db!r}, run_lease={self.run_lease:g})"

    def _owns(self, run_id: str, token: str | None) -> bool:
        """Whether a run whose stored owner token is ``token`` is still this object's to write (a
        run this object did not start or reopen is anybody's)."""
        mine = self._tokens.get(run_id)
        return mine is None or mine == token

    def _notify(self, conn: Conn, run_id: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (self.db.channel, run_topic(run_id)))

    # -- interruption ----------------------------------------------------------------------------

    def _interrupt(self, conn: Conn, run_id: str) -> bool:
        """In a transaction: end a running run whose lease expired as ``interrupted``, appending its
        ``run_end`` after its last event (with an id later than every event's). Its ``ended_at`` is
        its last sign of life in the log."""
        row = conn.execute(
            f"SELECT started_at, owner_pid, owner_host, last_seq FROM runs "
            f"WHERE run_id = %s AND status = 'running' AND lease_expires < {NOW_US} FOR UPDATE",
            (run_id,),
        ).fetchone()
        if row is None:
            return False
        started_us, pid, host, last_seq = row
        end = interrupted_end(
            run_id, _select_events(conn, run_id, 0, None), started_us / 1_000_000, pid, host, last_seq
        )
        _insert_events(conn, run_id, [end.event])
        conn.execute(
            "UPDATE runs SET status = 'interrupted', error = %s, ended_at = %s, duration_ms = %s, "
            "usage = %s, last_seq = %s, cancel_reason = NULL, owner_token = NULL WHERE run_id = %s",
            (
                _json(end.error),
                round(end.ended_at * 1_000_000),
                end.duration_ms,
                _json(end.usage),
                end.event.seq,
                run_id,
            ),
        )
        self._notify(conn, run_id)
        return True

    def _records(self, rows: list[tuple[Any, ...]], sql: str, args: Any) -> list[tuple[Any, ...]]:
        """``rows`` of :data:`_SELECT`; when some are expired, they are interrupted and all re-read."""
        expired = [row[0] for row in rows if row[12]]
        if not expired:
            return rows
        for run_id in expired:
            self.db.call(functools.partial(self._interrupt, run_id=run_id))
        return self.db.call(lambda conn: conn.execute(sql, args).fetchall())

    # -- the RunStore protocol -------------------------------------------------------------------

    async def create_run(self, record: RunRecord) -> None:
        run_id = _check_run_id(record.run_id)
        values = (
            run_id,
            record.workflow,
            record.status,
            _json(record.payload),
            None if record.result is None else _json(record.result),
            None if record.error is None else _json(record.error),
            _json(record.usage.to_dict()),
            to_us(record.started_at),
            None if record.ended_at is None else to_us(record.ended_at),
            record.duration_ms,
            record.owner_pid,
            record.owner_host,
            token := new_ulid(),
            self._lease_us,
        )
        sql = (
            f"INSERT INTO runs ({_COLUMNS}, owner_token, lease_expires) "
            f"VALUES ({', '.join(['%s'] * 13)}, {NOW_US} + %s) "
            "ON CONFLICT (run_id) DO NOTHING RETURNING position"
        )

        def write(conn: Conn) -> None:
            if conn.execute(sql, values).fetchone() is None:
                raise ConfigError(f"run id {run_id!r} already exists; pick another or leave it out")

        await self.db.run(write)
        self._tokens[run_id] = token

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        _check_run_id(run_id)
        if not events:
            return
        batch = list(events)
        _check_order(run_id, batch, batch[0].seq - 1)

        def write(conn: Conn) -> None:
            firsts, lasts, blobs = _chunks(batch)
            params = {
                "run": run_id,
                "first": batch[0].seq,
                "last": batch[-1].seq,
                "lease": self._lease_us,
                "firsts": firsts,
                "lasts": lasts,
                "blobs": blobs,
                "channel": self.db.channel,
                "topic": run_topic(run_id),
                "token": self._tokens.get(run_id),
            }
            if conn.execute(_APPEND, params).fetchone() is not None:
                return
            row = conn.execute(
                "SELECT status, last_seq, owner_token FROM runs WHERE run_id = %s", (run_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id[:60]!r}; create the run before writing its events")
            if row[0] == "running" and self._owns(run_id, row[2]):
                _check_order(run_id, batch, int(row[1]))
            # The run has ended, or has a new owner (an owner that lost its lease): its log is not ours.

        await self.db.run(write)

    async def finish_run(self, record: RunRecord, events: Sequence[Event] = ()) -> None:
        run_id = _check_run_id(record.run_id)
        batch = list(events)
        values = (
            record.status,
            None if record.result is None else _json(record.result),
            None if record.error is None else _json(record.error),
            _json(record.usage.to_dict()),
            None if record.ended_at is None else to_us(record.ended_at),
            record.duration_ms,
        )

        def write(conn: Conn) -> None:
            row = conn.execute(
                "SELECT status, last_seq, owner_token FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id[:60]!r}; create the run before finishing it")
            if row[0] != "running" or not self._owns(run_id, row[2]):
                return  # already ended (interrupted while its owner was silent), or resumed elsewhere
            last_seq = int(row[1])
            _check_order(run_id, batch, last_seq)
            if batch:
                _insert_events(conn, run_id, batch)
                last_seq = batch[-1].seq
            conn.execute(
                "UPDATE runs SET status = %s, result = %s, error = %s, usage = %s, ended_at = %s, "
                "duration_ms = %s, last_seq = %s, cancel_reason = NULL, owner_token = NULL "
                "WHERE run_id = %s",
                (*values, last_seq, run_id),
            )
            self._notify(conn, run_id)

        try:
            await self.db.run(write)
        finally:
            self._tokens.pop(run_id, None)

    async def get_run(self, run_id: str) -> RunRecord | None:
        _check_run_id(run_id)
        sql = f"{_SELECT} WHERE run_id = %s"

        def read() -> list[tuple[Any, ...]]:
            rows = self.db.call(lambda conn: conn.execute(sql, (run_id,)).fetchall())
            return self._records(rows, sql, (run_id,))

        rows = await self.db.in_thread(read)
        return _record(rows[0]) if rows else None

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        where: list[str] = []
        args: list[Any] = []
        if workflow is not None:
            where.append("workflow = %s")
            args.append(workflow)
        if status is not None:
            where.append("status = %s")
            args.append(status)
        if cursor is not None:
            where.append("position < %s")
            args.append(decode_cursor(cursor))
        size = max(limit, 1)
        args.append(size + 1)
        sql = f"{_SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY position DESC LIMIT %s"

        def read() -> list[tuple[Any, ...]]:
            rows = self.db.call(lambda conn: conn.execute(sql, args).fetchall())
            return self._records(rows, sql, args)

        rows = await self.db.in_thread(read)
        more = len(rows) > size
        rows = rows[:size]
        return RunPage([_record(r) for r in rows], encode_cursor(rows[-1][13]) if more else None)

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        _check_run_id(run_id)
        return await self.db.run(lambda conn: _select_events(conn, run_id, after_seq, limit))

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        _check_run_id(run_id)

        def write(conn: Conn) -> bool:
            row = conn.execute(
                f"SELECT status, lease_expires < {NOW_US} FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id[:60]!r} in {self.db.where}")
            if row[0] != "running" or (row[1] and self._interrupt(conn, run_id)):
                return False
            conn.execute("UPDATE runs SET cancel_reason = %s WHERE run_id = %s", (reason, run_id))
            self._notify(conn, run_id)
            return True

        return await self.db.run(write)

    async def cancel_requested(self, run_id: str) -> str | None:
        _check_run_id(run_id)
        row = await self.db.run(
            lambda conn: conn.execute(
                "SELECT cancel_reason FROM runs WHERE run_id = %s", (run_id,)
            ).fetchone()
        )
        return None if row is None else row[0]

    async def heartbeat(self, run_id: str) -> str | None:
        """The owner's sign of life: renew the run's lease (a write at most every third of the
        lease) and return what its cancel poll needs — the reason of a pending cancel request, or,
        for a run that was ``interrupted`` while its owner was silent, why it must stop."""
        _check_run_id(run_id)
        params = {
            "run": run_id,
            "lease": self._lease_us,
            "renew_below": self._lease_us * 2 // 3,
            "token": self._tokens.get(run_id),
        }
        row = await self.db.run(lambda conn: conn.execute(_HEARTBEAT, params).fetchone())
        if row is None:
            return None
        status, reason, token = row
        if status == "interrupted":
            return f"the run was marked interrupted: its owner sent no sign of life for {self.run_lease:g} s"
        if status == "running" and not self._owns(run_id, token):
            return "the run was interrupted and resumed by another process; this attempt stops"
        return reason if status == "running" else None

    async def prune_runs(self, older_than: float) -> int:
        cutoff = round((time.time() - older_than) * 1_000_000)

        def write(conn: Conn) -> int:
            row = conn.execute(
                "WITH doomed AS "
                "(DELETE FROM runs WHERE status <> 'running' AND ended_at < %s RETURNING run_id), "
                "gone AS (DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM doomed)), "
                "steps AS (DELETE FROM run_journal WHERE run_id IN (SELECT run_id FROM doomed)) "
                "SELECT count(*) FROM doomed",
                (cutoff,),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self.db.run(write)

    async def recover_interrupted(self) -> list[str]:
        def work() -> list[str]:
            rows = self.db.call(
                lambda conn: conn.execute(
                    f"SELECT run_id FROM runs WHERE status = 'running' AND lease_expires < {NOW_US}"
                ).fetchall()
            )
            return [
                run_id
                for (run_id,) in rows
                if self.db.call(functools.partial(self._interrupt, run_id=run_id))
            ]

        return await self.db.in_thread(work)

    # -- the journal of resumable runs ---------------------------------------------------------------

    async def record_step(self, run_id: str, step: JournalStep, events: Sequence[Event] = ()) -> None:
        """Write ``step`` and the ``events`` before it in one transaction (renewing the lease). A run
        that ended, or that another process reopened, refuses both with ``StoreError``: this attempt
        is not the run's owner any more and must not go on."""
        _check_run_id(run_id)
        batch = list(events)
        if batch:
            _check_order(run_id, batch, batch[0].seq - 1)
        token = self._tokens.get(run_id)
        row = journal_row(run_id, step)

        def write(conn: Conn) -> None:
            found = conn.execute(
                "SELECT status, last_seq, owner_token FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if found is None:
                raise NotFoundError(f"no run {run_id[:60]!r}; create the run before journaling its steps")
            status, last_seq, owner = found
            if status != "running" or (token is not None and owner != token):
                raise StoreError(
                    f"run {run_id[:60]!r} is {status}"
                    + (" under another owner" if status == "running" else "")
                    + "; this attempt lost the run (its lease expired) and stops"
                )
            if batch:
                _check_order(run_id, batch, int(last_seq))
                _insert_events(conn, run_id, batch)
                last_seq = batch[-1].seq
            conn.execute(
                f"UPDATE runs SET last_seq = %s, lease_expires = greatest(lease_expires, {NOW_US} + %s) "
                "WHERE run_id = %s",
                (last_seq, self._lease_us, run_id),
            )
            conn.execute(
                "INSERT INTO run_journal (run_id, step, position, kind, name, fingerprint, status, result) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, step) DO UPDATE SET "
                "position = excluded.position, kind = excluded.kind, name = excluded.name, "
                "fingerprint = excluded.fingerprint, status = excluded.status, result = excluded.result",
                row,
            )
            if batch:
                self._notify(conn, run_id)

        await self.db.run(write)

    async def read_journal(self, run_id: str) -> list[JournalStep]:
        _check_run_id(run_id)
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT step, position, kind, name, fingerprint, status, result FROM run_journal "
                "WHERE run_id = %s ORDER BY position",
                (run_id,),
            ).fetchall()
        )
        return [
            JournalStep(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else from_json(bytes(r[6])))
            for r in rows
        ]

    async def reopen_run(self, run_id: str, owner_pid: int | None, owner_host: str | None) -> RunRecord:
        """Reopen an interrupted run (one whose lease just expired is interrupted first) under a new
        owner token and a fresh lease of this store's ``run_lease``. The run's row is locked: of
        processes reopening it at once, on any host, the first wins and the others get
        :class:`~pyflue.stores.runs.RunNotInterruptedError`."""
        _check_run_id(run_id)
        token = new_ulid()

        def write(conn: Conn) -> RunRecord:
            found = conn.execute(
                f"SELECT status = 'running' AND lease_expires < {NOW_US} FROM runs "
                "WHERE run_id = %s FOR UPDATE",
                (run_id,),
            ).fetchone()
            if found is None:
                raise NotFoundError(f"no run {run_id[:60]!r} in {self.db.where}")
            if found[0]:
                self._interrupt(conn, run_id)
            row = conn.execute(f"{_SELECT} WHERE run_id = %s", (run_id,)).fetchone()
            assert row is not None
            record = _record(row)
            if record.status != "interrupted":
                raise RunNotInterruptedError(not_resumable(record))
            conn.execute(
                "UPDATE runs SET status = 'running', error = NULL, ended_at = NULL, duration_ms = NULL, "
                f"owner_pid = %s, owner_host = %s, owner_token = %s, lease_expires = {NOW_US} + %s, "
                "cancel_reason = NULL WHERE run_id = %s",
                (owner_pid, owner_host, token, self._lease_us, run_id),
            )
            self._notify(conn, run_id)
            return record

        record = await self.db.run(write)
        self._tokens[run_id] = token
        return record

    async def watch(self, run_id: str) -> Watch:
        """A watch that wakes when the run's log or record changes, from any process: call
        ``await watch.wait(timeout)`` between reads; close it when done (or ``async with``)."""
        return await self.db.watch(run_topic(_check_run_id(run_id)))

    async def aclose(self) -> None:
        """Nothing of its own to release: the database's owner closes it."""
