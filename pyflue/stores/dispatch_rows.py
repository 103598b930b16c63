"""What the SQL dispatch stores (SQLite, PostgreSQL) share: the row form of records and attempts, the
transaction bodies of claims, finishing calls and cancels over a :class:`Table`, and group commit.

Both stores keep the same columns (times as integer microseconds, JSON as bytes) and the same
"session head carries ``ready_at``" scheme; they differ only in SQL dialect, in how rows are locked
(SQLite's one writer; PostgreSQL's ``FOR UPDATE SKIP LOCKED`` and advisory locks) and in how a change is
announced. So each store gives a :class:`Table` — its statements, bound to one open transaction — and the
bodies here decide what to write with :mod:`pyflue.stores.dispatches`'s pure transitions.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import anyio
import anyio.to_thread
from pydantic_core import from_json, to_json

from .dispatches import (
    Attempt,
    AttemptStatus,
    DispatchOutcome,
    DispatchRecord,
    attempt_end,
    claimed,
    from_us,
    holds,
    on_cancel,
    taken_over,
    to_us,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "COLUMNS",
    "PENDING",
    "GroupCommit",
    "Table",
    "attempt_of",
    "cancel_in",
    "claim_in",
    "end_in",
    "json_bytes",
    "micros",
    "outcome_bytes",
    "record_of",
    "record_values",
]

#: The columns of a record, in the order of :func:`record_of` and :func:`record_values`.
COLUMNS = (
    "dispatch_id, agent, instance_id, session_id, input, key, status, accepted_at, available_at, "
    "updated_at, attempts, max_attempts, worker, lease_expires, cancel_requested, outcome, traceparent"
)
ATTEMPT_COLUMNS = "dispatch_id, number, worker, started_at, ended_at, status, error"
#: The condition of a queued or running row (spelled as the stores' partial indexes spell it).
PENDING = "status IN ('queued', 'running')"


def json_bytes(value: Any) -> bytes:
    """JSON that never fails: values JSON cannot hold (user data) become their ``repr``."""
    return to_json(value, fallback=repr, inf_nan_mode="null", bytes_mode="base64")


def micros(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def outcome_bytes(record: DispatchRecord) -> bytes | None:
    return None if record.outcome is None else record.outcome.model_dump_json().encode()


def _moment(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def record_of(row: Sequence[Any]) -> DispatchRecord:
    """The record of a row that starts with :data:`COLUMNS` (blobs as ``bytes`` or ``memoryview``)."""
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
        lease_expires=_moment(row[13]),
        cancel_requested=row[14],
        outcome=None if row[15] is None else DispatchOutcome.model_validate_json(bytes(row[15])),
        traceparent=row[16],
    )


def record_values(record: DispatchRecord) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``record``."""
    return (
        record.dispatch_id,
        record.agent,
        record.instance_id,
        record.session_id,
        json_bytes(record.input),
        record.key,
        record.status,
        to_us(record.accepted_at),
        to_us(record.available_at),
        to_us(record.updated_at),
        record.attempts,
        record.max_attempts,
        record.worker,
        micros(record.lease_expires),
        record.cancel_requested,
        outcome_bytes(record),
        record.traceparent,
    )


def attempt_of(row: Sequence[Any]) -> Attempt:
    """The attempt of a row of :data:`ATTEMPT_COLUMNS`."""
    return Attempt(
        dispatch_id=row[0],
        number=row[1],
        worker=row[2],
        started_at=from_us(row[3]),
        ended_at=_moment(row[4]),
        status=row[5],
        error=None if row[6] is None else from_json(bytes(row[6])),
    )


class Table(Protocol):
    """A store's statements inside one open write transaction."""

    def now(self) -> datetime:
        """The store's time (stamped after the rows read so far were locked)."""
        ...

    def heads(self, now: datetime, limit: int) -> builtins.list[DispatchRecord]:
        """Up to ``limit`` session heads ready at ``now``, in claim order, locked for this transaction."""
        ...

    def load(self, dispatch_id: str) -> tuple[DispatchRecord, bool] | None:
        """The record (locked) and whether it is its session's head; ``None`` if there is none."""
        ...

    def save(self, new: DispatchRecord, was_head: bool) -> None:
        """Write ``new``; a finished head hands the session on to its next item."""
        ...

    def add_attempt(self, attempt: Attempt) -> None: ...

    def close_attempt(
        self, record: DispatchRecord, now: datetime, status: AttemptStatus, error: dict[str, Any] | None
    ) -> None:
        """Close ``record``'s open attempt (number ``record.attempts``)."""
        ...


def claim_in(
    table: Table, worker: str, lease_seconds: float, limit: int
) -> tuple[builtins.list[DispatchRecord], bool]:
    """Claim up to ``limit`` ready heads for ``worker``: the claimed records, and whether an expired
    item ended instead (cancel requested or no attempts left; its session's next item may be ready)."""
    taken: builtins.list[DispatchRecord] = []
    ended = False
    now = table.now()
    while len(taken) < limit:
        heads = table.heads(now, limit - len(taken))
        if not heads:
            break
        now = table.now()  # later than the commit of whatever these claims follow
        moved = False
        for head in heads:
            if head.status == "running":
                final, error = taken_over(head, now)
                table.close_attempt(head, now, "crashed", error)
                if final is not None:
                    table.save(final, was_head=True)
                    moved = ended = True
                    continue
            running, attempt = claimed(head, worker, now, lease_seconds)
            table.save(running, was_head=True)
            table.add_attempt(attempt)
            taken.append(running)
        if not moved:
            break
    return taken, ended


def end_in(
    table: Table,
    dispatch_id: str,
    worker: str,
    transition: Callable[[DispatchRecord, datetime], DispatchRecord],
    error: dict[str, Any] | None,
) -> DispatchRecord | None:
    """A lease holder's finishing call: apply ``transition``, close the attempt; ``None`` if
    ``worker`` no longer holds the lease."""
    loaded = table.load(dispatch_id)
    if loaded is None or not holds(loaded[0], worker):
        return None
    record = loaded[0]
    now = table.now()
    new = transition(record, now)
    table.close_attempt(record, now, attempt_end(new), error)
    table.save(new, was_head=True)
    return new


def cancel_in(table: Table, dispatch_id: str, reason: str) -> tuple[DispatchRecord, bool] | None:
    """A cancel request: the record after it and whether it changed; ``None`` if there is none."""
    loaded = table.load(dispatch_id)
    if loaded is None:
        return None
    record, head = loaded
    now = table.now()
    decided = on_cancel(record, now, reason)
    if decided is None:
        return record, False
    new, crashed = decided
    if crashed is not None:
        table.close_attempt(record, now, "crashed", crashed)
    table.save(new, was_head=head)
    return new, True


class _Entry:
    """One ``enqueue`` call waiting for its group commit."""

    __slots__ = ("done", "error", "lead", "record", "result")

    def __init__(self, record: DispatchRecord) -> None:
        self.record = record
        self.result: DispatchRecord | None = None
        self.error: BaseException | None = None
        self.lead = False  # woken to commit the next batch rather than with a result
        self.done = anyio.Event()


class GroupCommit:
    """Concurrent ``enqueue`` calls on one store object share a transaction: the first caller commits
    everything queued so far, and each call returns once its own row is committed.

    ``commit(records)`` runs in a worker thread and returns, per record, the stored record or the
    exception that refused it alone (an exception it raises fails the whole batch);
    ``committed(stored)`` runs on the loop after each batch with the records it stored."""

    def __init__(
        self,
        commit: Callable[[builtins.list[DispatchRecord]], builtins.list[DispatchRecord | BaseException]],
        committed: Callable[[builtins.list[DispatchRecord]], None] | None = None,
    ) -> None:
        self._commit = commit
        self._committed = committed
        self._waiting: builtins.list[_Entry] = []
        self._committing = False

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

    def _run(self, batch: builtins.list[_Entry]) -> None:
        try:
            results = self._commit([entry.record for entry in batch])
        except BaseException as exc:
            for entry in batch:
                entry.result, entry.error = None, exc
            return
        for entry, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                entry.error = result
            else:
                entry.result = result

    async def _lead(self) -> None:
        """Commit every waiting call in one transaction, then wake one caller that arrived
        meanwhile to commit the next batch (so no caller commits for others forever)."""
        with anyio.CancelScope(shield=True):
            batch, self._waiting = self._waiting, []
            if batch:
                await anyio.to_thread.run_sync(self._run, batch)
                for entry in batch:
                    entry.done.set()
            if self._waiting:
                self._waiting[0].lead = True
                self._waiting[0].done.set()
            else:
                self._committing = False
            stored = [entry.result for entry in batch if entry.result is not None]
            if stored and self._committed is not None:
                self._committed(stored)
