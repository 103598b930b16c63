"""The dispatch store: durable admission queue records, the store protocol, and its state machine.

A dispatch is input accepted for one (agent, instance, session) target. The store keeps it
``queued`` until a worker claims it with a lease, then ``running`` until the worker reports the
outcome (``delivered`` / ``failed``), the item is ``cancelled``, or the lease expires and another
claimer takes it over (the abandoned attempt is recorded as ``crashed``).

Every implementation (memory, SQLite, PostgreSQL) applies the same transitions, written once here
as pure functions on records (:func:`claimed`, :func:`taken_over`, :func:`completed`, ...), and
passes the same contract suite (``tests/stores/test_dispatch_contract.py``). Times are UTC
``datetime`` values with microsecond precision; stores keep them as integer microseconds
(:func:`to_us` / :func:`from_us`) so they round-trip exactly and compare cheaply in indexes.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import from_json, to_json

from ..errors import ConfigError
from ..events import Event
from ..ids import check_id, new_ulid
from .changes import Watch

__all__ = [
    "DISPATCH_STATUSES",
    "FINAL_STATUSES",
    "Attempt",
    "AttemptStatus",
    "ChangeSignal",
    "DispatchOutcome",
    "DispatchPage",
    "DispatchRecord",
    "DispatchStatus",
    "DispatchStore",
    "accepted",
    "attempt_end",
    "cancelled",
    "check_events",
    "check_lease",
    "check_list_args",
    "claimed",
    "closed",
    "completed",
    "decode_cursor",
    "decode_event",
    "encode_cursor",
    "encode_event",
    "failed",
    "from_us",
    "holds",
    "key_conflict",
    "lost_worker_error",
    "new_dispatch_id",
    "on_cancel",
    "ready_at_us",
    "renewed",
    "taken_over",
    "to_us",
]

DispatchStatus = Literal["queued", "running", "delivered", "failed", "cancelled"]
#: Every status a dispatch can have, in lifecycle order.
DISPATCH_STATUSES: tuple[str, ...] = ("queued", "running", "delivered", "failed", "cancelled")
#: Statuses that never change again.
FINAL_STATUSES = frozenset({"delivered", "failed", "cancelled"})
AttemptStatus = Literal["running", "delivered", "failed", "cancelled", "crashed"]

#: Default number of attempts before an item ends ``failed``.
DEFAULT_MAX_ATTEMPTS = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHOWN = 60  # characters of a user id quoted in an error message


def new_dispatch_id() -> str:
    """``dispatch:<ulid>``: sortable by creation time within a process."""
    return f"dispatch:{new_ulid()}"


def to_us(value: datetime) -> int:
    """Microseconds since the epoch (exact for any aware ``datetime``)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """The UTC ``datetime`` of :func:`to_us` microseconds."""
    return _EPOCH + timedelta(microseconds=value)


def _now() -> datetime:
    return datetime.now(UTC)


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


class DispatchOutcome(BaseModel):
    """What a finished dispatch produced: for ``delivered`` the operation's id, text, typed output
    (JSON form) and usage; for ``failed`` (and a cancelled running item, when the worker says so)
    ``error`` as ``{"type", "message", ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation_id: str | None = None
    text: str | None = None
    output: Any = None
    usage: dict[str, int] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class DispatchRecord(BaseModel):
    """One dispatched input and its progress.

    Build a new one with the target and input (``dispatch_id`` defaults to a fresh id) and pass it
    to :meth:`DispatchStore.enqueue`, which stamps the times and returns the stored record — or, for
    a reused ``key``, the first record. ``agent``, ``instance_id``, ``session_id`` and ``key`` are
    data (any printable text of 1 to 256 characters, never a path); ``input`` is JSON: a string or a
    list of parts as dicts. ``attempts`` counts claims; ``worker`` / ``lease_expires`` name the
    current (or last) lease; ``cancel_requested`` holds the reason of a cancel request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dispatch_id: str = Field(default_factory=new_dispatch_id)
    agent: str
    instance_id: str
    session_id: str = "default"
    input: str | list[dict[str, Any]]
    key: str | None = None
    status: DispatchStatus = "queued"
    accepted_at: datetime = Field(default_factory=_now)
    available_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    worker: str | None = None
    lease_expires: datetime | None = None
    cancel_requested: str | None = None
    outcome: DispatchOutcome | None = None
    traceparent: str | None = None

    @field_validator("dispatch_id", "agent", "instance_id", "session_id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        return check_id(value, "a dispatch's id, agent, instance or session")

    @field_validator("key")
    @classmethod
    def _a_key(cls, value: str | None) -> str | None:
        return None if value is None else check_id(value, "a dispatch key")

    @field_validator("max_attempts")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {value}")
        return value

    @property
    def target(self) -> tuple[str, str, str]:
        """``(agent, instance_id, session_id)``: the queue this item is ordered in."""
        return (self.agent, self.instance_id, self.session_id)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


class Attempt(BaseModel):
    """One claim of a dispatch. ``number`` counts from 1; an attempt whose worker stopped renewing
    its lease before finishing is closed ``crashed`` when another claimer takes the item over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dispatch_id: str
    number: int
    worker: str
    started_at: datetime
    ended_at: datetime | None = None
    status: AttemptStatus = "running"
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class DispatchPage:
    """One page of :meth:`DispatchStore.list`, newest first; pass ``next_cursor`` back as
    ``cursor=`` for the next page (``None`` on the last one)."""

    dispatches: list[DispatchRecord]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[DispatchRecord]:
        return iter(self.dispatches)

    def __len__(self) -> int:
        return len(self.dispatches)


@runtime_checkable
class DispatchStore(Protocol):
    """Where dispatched input waits, is claimed, and ends.

    Contract (every implementation passes ``tests/stores/test_dispatch_contract.py`` unchanged):

    * **Durable acceptance.** ``enqueue`` returns only after its record is committed. Concurrent
      enqueues may share one transaction (group commit); each still returns after its own commit.
    * **Idempotency.** A ``key`` is unique in the store: the same key for the same target returns
      the first record and enqueues nothing; for another target it raises ``ConfigError``.
    * **Per-session order.** Items of one (agent, instance, session) are claimed strictly in
      acceptance order, one at a time: an item is claimable only while it is its session's head
      (every earlier item of the session is finished). Distinct sessions are claimed together.
      Concurrent enqueues to one session are accepted in their commit order.
    * **Leases.** A claim holds the item until ``lease_expires``; ``renew`` extends it. An item whose
      lease expired is claimable again (at-least-once): its open attempt is closed ``crashed``,
      and, if it had no attempts left or a cancel was requested, the item ends ``failed`` /
      ``cancelled`` instead of being claimed. ``complete``, ``fail`` and ``finish_cancelled`` are
      accepted from the worker that holds the lease (an expired lease not yet taken over still
      counts) and return ``None`` once the lease was lost.
    * **Times** are the store's clock; relative arguments (``lease_seconds``, ``retry_after``) keep
      workers' clocks out of it.
    * **Change notification.** ``wait_changed`` returns early when this store object wrote, and
      otherwise notices other writers within the store's documented polling interval (PostgreSQL:
      at once, by ``NOTIFY``). ``watch`` does the same for one dispatch: its followers
      (``wait_dispatch``, a delivery's event stream) wake when its events or final status are
      committed, not on a timer.
    """

    async def enqueue(self, record: DispatchRecord) -> DispatchRecord:
        """Accept a new ``queued`` record (times stamped by the store); the stored record."""
        ...

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> builtins.list[DispatchRecord]:
        """Atomically claim up to ``limit`` session heads that are queued and available, or
        running with an expired lease. Each claim increments ``attempts`` and opens an attempt."""
        ...

    async def renew(self, dispatch_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s lease to now + ``lease_seconds``; False if it no longer holds it."""
        ...

    async def complete(
        self, dispatch_id: str, worker: str, outcome: DispatchOutcome
    ) -> DispatchRecord | None:
        """``delivered`` with ``outcome`` (also when a cancel was requested meanwhile: the work
        was done); the session's next item becomes claimable."""
        ...

    async def fail(
        self, dispatch_id: str, worker: str, error: dict[str, Any], retry_after: float | None
    ) -> DispatchRecord | None:
        """Close the attempt as failed. With ``retry_after`` seconds and attempts left, the item
        is queued again (available after that delay, still its session's head); otherwise, or if
        a cancel was requested, it ends ``failed`` (``cancelled``) and the session moves on."""
        ...

    async def finish_cancelled(self, dispatch_id: str, worker: str) -> DispatchRecord | None:
        """A running item whose operation the worker aborted after a cancel request ends
        ``cancelled``; the session moves on."""
        ...

    async def cancel(self, dispatch_id: str, reason: str) -> DispatchRecord | None:
        """Queued: ``cancelled`` now, never delivered. Running: ``cancel_requested`` is set (the
        first reason is kept) for the worker to abort; if its lease already expired, the item is
        ``cancelled`` now. Finished: unchanged. ``None`` if there is no such dispatch."""
        ...

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        """The record, or ``None``."""
        ...

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
        """Records newest (last accepted) first, filtered; ``ConfigError`` for a bad status,
        limit or cursor."""
        ...

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        """Every attempt of the dispatch, by number (empty if none or no such dispatch)."""
        ...

    async def append_events(self, dispatch_id: str, events: Sequence[Event]) -> None:
        """Store events of the dispatch's delivery, atomically. Their ``seq`` must increase
        strictly, past every stored one (``ConfigError`` otherwise); ``NotFoundError`` for an
        unknown dispatch."""
        ...

    async def read_events(
        self, dispatch_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> builtins.list[Event]:
        """Stored events with ``seq > after_seq`` in order (at most ``limit``)."""
        ...

    async def wait_changed(self, timeout: float) -> bool:
        """Wait until the store may have changed (True; spurious wake-ups allowed) or ``timeout``
        seconds passed (False). Claimers and followers call it between reads."""
        ...

    async def watch(self, dispatch_id: str) -> Watch:
        """A :class:`~pyflue.stores.changes.Watch` of one dispatch: take it before reading, then
        ``await watch.wait(timeout)`` between reads; True once the dispatch's events or status may
        have changed (spurious wake-ups allowed), False after ``timeout`` seconds. Close it when done."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds and wake its waiters."""
        ...


# -- argument checks shared by the implementations -------------------------------------------------


def check_lease(worker: str, lease_seconds: float, limit: int = 1) -> None:
    if not isinstance(worker, str) or not worker:
        raise ConfigError("worker must be a non-empty string naming the claimer")
    if not lease_seconds > 0:
        raise ConfigError(f"lease_seconds must be positive, got {lease_seconds!r}")
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit!r}")


def check_list_args(status: str | None, limit: int) -> None:
    if status is not None and status not in DISPATCH_STATUSES:
        raise ConfigError(f"unknown dispatch status {status!r}; use one of {', '.join(DISPATCH_STATUSES)}")
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit!r}")


def check_events(dispatch_id: str, events: Sequence[Event], last_seq: int) -> None:
    """``ConfigError`` unless the events' ``seq`` increase strictly past ``last_seq``."""
    for event in events:
        if event.seq <= last_seq:
            raise ConfigError(
                f"event seq {event.seq} of dispatch {_shown(dispatch_id)} does not follow {last_seq}; "
                "seq must increase strictly per dispatch"
            )
        last_seq = event.seq


def key_conflict(existing: DispatchRecord, record: DispatchRecord) -> DispatchRecord:
    """The first record of a reused key, or ``ConfigError`` when the key names another target."""
    if existing.target != record.target:
        agent, instance, session = existing.target
        raise ConfigError(
            f"dispatch key {_shown(record.key or '')} was already used for agent {_shown(agent)}, "
            f"instance {_shown(instance)}, session {_shown(session)}; use a new key for another target"
        )
    return existing


def encode_cursor(position: int) -> str:
    """An opaque cursor for an item's acceptance position."""
    return base64.urlsafe_b64encode(f"d1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, number = text.partition(":")
        if tag != "d1":
            raise ValueError(tag)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise ConfigError(
            f"invalid dispatch list cursor {_shown(str(cursor))}; pass back a next_cursor unchanged"
        ) from None


# -- the state machine -----------------------------------------------------------------------------


def lost_worker_error(worker: str | None, attempt: int, lease_expires: datetime | None) -> dict[str, Any]:
    """The error of an attempt whose worker stopped renewing its lease before finishing."""
    expired = lease_expires.isoformat() if lease_expires is not None else "unknown"
    return {
        "type": "WorkerLostError",
        "message": f"attempt {attempt} by worker {worker!r} stopped renewing its lease (expired {expired}) "
        "before finishing; the worker probably crashed",
        "worker": worker,
        "attempt": attempt,
    }


def ready_at_us(record: DispatchRecord) -> int | None:
    """When a session head becomes claimable: a queued item when available, a running one when
    its lease expires; ``None`` for a finished item."""
    if record.status == "queued":
        return to_us(record.available_at)
    if record.status == "running" and record.lease_expires is not None:
        return to_us(record.lease_expires)
    return None


def accepted(record: DispatchRecord, now: datetime) -> DispatchRecord:
    """The stored form of a new record; ``ConfigError`` if it is not new."""
    if record.status != "queued" or record.attempts or record.outcome is not None or record.worker:
        raise ConfigError("enqueue takes a new record (status queued, no attempts, worker or outcome)")
    return record.model_copy(
        update={
            "accepted_at": now,
            "available_at": now,
            "updated_at": now,
            "lease_expires": None,
            "cancel_requested": None,
        }
    )


def claimed(
    record: DispatchRecord, worker: str, now: datetime, lease_seconds: float
) -> tuple[DispatchRecord, Attempt]:
    """A claimable head claimed by ``worker``, and its new attempt."""
    number = record.attempts + 1
    running = record.model_copy(
        update={
            "status": "running",
            "attempts": number,
            "worker": worker,
            "lease_expires": now + timedelta(seconds=lease_seconds),
            "updated_at": now,
        }
    )
    return running, Attempt(dispatch_id=record.dispatch_id, number=number, worker=worker, started_at=now)


def taken_over(record: DispatchRecord, now: datetime) -> tuple[DispatchRecord | None, dict[str, Any]]:
    """A running item whose lease expired: the crashed attempt's error, and the item's final form
    when it must not be claimed again (cancel requested, or no attempts left) — else ``None``."""
    error = lost_worker_error(record.worker, record.attempts, record.lease_expires)
    if record.cancel_requested is not None:
        return record.model_copy(
            update={"status": "cancelled", "lease_expires": None, "updated_at": now}
        ), error
    if record.attempts >= record.max_attempts:
        return record.model_copy(
            update={
                "status": "failed",
                "lease_expires": None,
                "updated_at": now,
                "outcome": DispatchOutcome(error=error),
            }
        ), error
    return None, error


def holds(record: DispatchRecord | None, worker: str) -> bool:
    """Whether ``worker`` holds the lease of a running item."""
    return record is not None and record.status == "running" and record.worker == worker


def renewed(record: DispatchRecord, now: datetime, lease_seconds: float) -> DispatchRecord:
    return record.model_copy(
        update={"lease_expires": now + timedelta(seconds=lease_seconds), "updated_at": now}
    )


def completed(record: DispatchRecord, now: datetime, outcome: DispatchOutcome) -> DispatchRecord:
    return record.model_copy(
        update={"status": "delivered", "outcome": outcome, "lease_expires": None, "updated_at": now}
    )


def failed(
    record: DispatchRecord, now: datetime, error: dict[str, Any], retry_after: float | None
) -> DispatchRecord:
    """Queued again for a retry when allowed; else ``failed`` (``cancelled`` if one was asked)."""
    if record.cancel_requested is not None:
        return cancelled(record, now)
    if retry_after is not None and record.attempts < record.max_attempts:
        return record.model_copy(
            update={
                "status": "queued",
                "available_at": now + timedelta(seconds=max(retry_after, 0.0)),
                "worker": None,
                "lease_expires": None,
                "updated_at": now,
            }
        )
    return record.model_copy(
        update={
            "status": "failed",
            "lease_expires": None,
            "updated_at": now,
            "outcome": DispatchOutcome(error=error),
        }
    )


def cancelled(record: DispatchRecord, now: datetime, reason: str | None = None) -> DispatchRecord:
    update: dict[str, Any] = {"status": "cancelled", "lease_expires": None, "updated_at": now}
    if record.cancel_requested is None:
        update["cancel_requested"] = reason or "cancelled"
    return record.model_copy(update=update)


def on_cancel(
    record: DispatchRecord, now: datetime, reason: str
) -> tuple[DispatchRecord, dict[str, Any] | None] | None:
    """What a cancel request does: queued, the item is ``cancelled``; running with an expired lease,
    it is ``cancelled`` and its open attempt closes ``crashed`` with the returned error; running, the
    (first) reason is recorded for the worker to abort. ``None`` when nothing changes (finished, or
    a cancel was already requested)."""
    if record.status == "queued":
        return cancelled(record, now, reason), None
    if record.status == "running" and record.lease_expires is not None and record.lease_expires <= now:
        return cancelled(record, now, reason), lost_worker_error(
            record.worker, record.attempts, record.lease_expires
        )
    if record.status == "running" and record.cancel_requested is None:
        return record.model_copy(update={"cancel_requested": reason, "updated_at": now}), None
    return None


def closed(attempt: Attempt, now: datetime, status: AttemptStatus, error: dict[str, Any] | None) -> Attempt:
    return attempt.model_copy(update={"ended_at": now, "status": status, "error": error})


def attempt_end(after: DispatchRecord) -> AttemptStatus:
    """How a worker's finishing call (now ``after``) closes the open attempt."""
    if after.status == "delivered":
        return "delivered"
    if after.status == "cancelled":
        return "cancelled"
    return "failed"


class ChangeSignal:
    """Wakes the tasks waiting in ``wait_changed`` when their store object writes (one event loop)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, timeout: float) -> bool:
        """True when notified within ``timeout`` seconds."""
        if self._event is None:
            self._event = anyio.Event()
        event = self._event
        with anyio.move_on_after(max(timeout, 0.0)):
            await event.wait()
            return True
        return False


def encode_event(event: Event) -> bytes:
    """An event's JSON form; values JSON cannot hold (user data) become their ``repr``."""
    return to_json(event.model_dump(), fallback=repr, inf_nan_mode="null", bytes_mode="base64")


def decode_event(blob: bytes) -> Event:
    return Event.model_validate(from_json(blob))
