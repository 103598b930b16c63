"""Workflow runs as a store keeps them: the record, pages of runs, and the :class:`RunStore` protocol.

A run is a record (status, payload, result, error, usage, owner) plus its complete event log. Any
process sharing the store may read, follow, cancel and prune any run; see docs/workflows.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..models.base import Usage

if TYPE_CHECKING:
    from ..events import Event
    from .changes import Watch

__all__ = [
    "RUN_STATUSES",
    "JournalStep",
    "RunJournalStore",
    "RunNotInterruptedError",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "decode_cursor",
    "encode_cursor",
    "interrupted_error",
    "not_resumable",
    "usage_of",
]

RunStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]
#: Every status a run can have; all but ``running`` are final.
RUN_STATUSES: tuple[str, ...] = ("running", "completed", "failed", "cancelled", "interrupted")


class RunRecord(BaseModel):
    """One workflow run as the run store keeps it.

    ``payload`` is the validated payload the run saw; ``result`` the workflow's return value in JSON
    form (``None`` unless ``completed``); ``error`` is ``{"type", "message", ...}`` for ``failed``,
    ``cancelled`` and ``interrupted`` runs (``reason`` says ``timeout``, ``cancel_requested``,
    ``caller_cancelled`` or ``owner_died``). ``usage`` adds up every model call of the run, subagent
    tasks included. ``owner_pid`` / ``owner_host`` name the process that runs it: a ``running`` run
    whose owner is gone is marked ``interrupted`` instead of staying ``running`` forever.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str
    workflow: str
    status: RunStatus = "running"
    payload: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    usage: Usage = Field(default_factory=Usage)
    owner_pid: int | None = None
    owner_host: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final status (anything but ``running``)."""
        return self.status != "running"


@dataclass(slots=True)
class RunPage:
    """One page of :meth:`RunStore.list_runs`, newest first. Pass ``next_cursor`` back as
    ``cursor=`` for the next page; it is ``None`` on the last page."""

    runs: list[RunRecord]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)


def encode_cursor(position: int) -> str:
    """An opaque cursor for a run's insertion position (stores number runs as they insert them)."""
    return base64.urlsafe_b64encode(f"r1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position in a cursor from :func:`encode_cursor`; ``ConfigError`` when it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, number = text.partition(":")
        if tag != "r1":
            raise ValueError(tag)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ConfigError(f"invalid run list cursor {cursor!r}; pass back a next_cursor unchanged") from None


@runtime_checkable
class RunStore(Protocol):
    """Where workflow runs and their complete event logs live.

    Runs are numbered as they are inserted; ``list_runs`` pages newest first by that number, so a
    cursor stays valid, and no run is seen twice, however many runs start meanwhile. Event writes
    come in batches (``append_events``); ``finish_run`` writes the last batch and the final record in
    one transaction, so a reader that sees a final status also sees every event. A store shared by
    several processes (SQLite) lets any of them read, follow and cancel any run.

    Followers wait for change with :meth:`watch` instead of re-reading on a timer: PostgreSQL wakes
    them by ``NOTIFY`` from any process and host, the memory store from its own writes, SQLite from
    this store object's writes at once and from other processes' commits within its ``poll_interval``.
    """

    async def create_run(self, record: RunRecord) -> None:
        """Record a new run (status ``running``). ``ConfigError`` if its id exists already."""
        ...

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Add events at the end of a run's log, in ``seq`` order, atomically."""
        ...

    async def finish_run(self, record: RunRecord, events: Sequence[Event] = ()) -> None:
        """Write the last ``events`` and the final ``record`` together, atomically."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or ``None``. A ``running`` run whose owner process died is marked
        ``interrupted`` first."""
        ...

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, optionally of one workflow and/or status."""
        ...

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The run's stored events with ``seq > after_seq``, in order (at most ``limit``)."""
        ...

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        """Ask the process running ``run_id`` to cancel it. False when the run is not running;
        ``NotFoundError`` when there is no such run."""
        ...

    async def cancel_requested(self, run_id: str) -> str | None:
        """The reason of a pending cancel request of ``run_id``, or ``None`` (polled by the owner)."""
        ...

    async def heartbeat(self, run_id: str) -> str | None:
        """The owner's sign of life while the run runs (stores that judge ownership by lease renew
        it here); returns what the owner's poll needs: the reason it must stop, or ``None``."""
        ...

    async def prune_runs(self, older_than: float) -> int:
        """Delete finished runs (and their events) that ended more than ``older_than`` seconds ago;
        returns how many. Running runs are never pruned."""
        ...

    async def recover_interrupted(self) -> list[str]:
        """Mark ``running`` runs whose owner process is gone as ``interrupted``; their ids."""
        ...

    async def watch(self, run_id: str) -> Watch:
        """A :class:`~pyflue.stores.changes.Watch` of ``run_id``'s log and record: take it before
        reading, then ``await watch.wait(timeout)`` between reads; it returns True once the run may
        have changed (spurious wake-ups allowed), False after ``timeout`` seconds. Close it when done
        (or ``async with``). Any run id may be watched, also one that does not exist (yet)."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections it opened); it is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class JournalStep:
    """One step of a resumable run's journal (see :mod:`pyflue.journal`).

    ``step`` is the step's place in the run's code: ``"3"`` is the run's fourth step, ``"3.0"`` the
    first step inside step 3 (a subagent's model call inside a tool call). ``position`` orders the
    steps as they were recorded. ``kind`` is ``model``, ``tool``, ``step``, ``now``, ``uuid`` or
    ``random``; ``fingerprint`` identifies the request (a hash); ``status`` is ``started`` (the step
    began and has no result yet) or ``done``, and ``result`` is its JSON result when ``done``."""

    step: str
    position: int
    kind: str
    name: str
    fingerprint: str
    status: Literal["started", "done"]
    result: Any = None


class RunNotInterruptedError(ConfigError):
    """``reopen_run`` of a run that is not ``interrupted``: still running (its owner is alive, or
    another process reopened it first), or finished. Only one process can resume a run."""


@runtime_checkable
class RunJournalStore(Protocol):
    """What a run store needs for resumable runs: a journal of steps per run, and a way to hand an
    ``interrupted`` run to a new owner."""

    async def record_step(self, run_id: str, step: JournalStep, events: Sequence[Event] = ()) -> None:
        """Write ``step`` (replacing a ``started`` entry of the same ``step`` key) and the run's
        ``events`` produced up to it (the next ones of its log, as ``append_events`` writes them) in
        one transaction, durably, before the run uses the step's result: after a crash the log and
        the journal agree."""
        ...

    async def read_journal(self, run_id: str) -> list[JournalStep]:
        """The run's journal in recording order (empty for a run that has none)."""
        ...

    async def reopen_run(self, run_id: str, owner_pid: int | None, owner_host: str | None) -> RunRecord:
        """Atomically turn an ``interrupted`` run back to ``running`` under a new owner and return
        the record as it was (interrupted). Of processes reopening a run at once, on any host, one
        succeeds; the others get :class:`RunNotInterruptedError`, as does a run that is still running
        or finished. ``NotFoundError`` when there is no such run."""
        ...


def not_resumable(record: RunRecord) -> str:
    """Why ``record`` cannot be reopened (the message of a ``reopen_run`` refusal)."""
    return f"run {record.run_id!r} is {record.status}; only an interrupted run can be resumed" + (
        " (its owner is still alive)" if record.status == "running" else ""
    )


def interrupted_error(pid: int | None, host: str | None) -> dict[str, Any]:
    """The ``error`` of a run whose process ended before the run did."""
    where = f"pid {pid}" + (f" on {host}" if host else "")
    return {
        "type": "WorkflowError",
        "message": f"the process running this run ({where}) ended before the run did",
        "reason": "owner_died",
    }


def usage_of(events: Iterable[Event], start: Usage | None = None) -> Usage:
    """``start`` plus the usage of every ``model_end`` among ``events``: what a run spent, subagent
    tasks included (their model calls are events of the run too)."""
    usage = start if start is not None else Usage()
    for event in events:
        if event.type == "model_end":
            spent = event.data.get("usage")
            if spent:
                usage = usage + Usage(**spent)
    return usage
