"""How run stores keep a run's log: compact JSON rows of events in chunks, and the ``run_end`` a store
writes for a run whose owner died.

Pure functions shared by the SQLite and PostgreSQL run stores, so both read and write the same bytes
(journal steps of resumable runs included).
An event is stored as a JSON array (its time as a number, its ULID as text: ``Event`` builds the ISO
time lazily when a reader asks); consecutive events of one write are one chunk row, so a write costs
one row per batch instead of one per event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json, to_json

from ..events import Event
from ..ids import encode_ulid, new_ulid_int
from .runs import JournalStep, interrupted_error, usage_of

__all__ = [
    "CHUNK",
    "InterruptedEnd",
    "chunks",
    "interrupted_end",
    "journal_row",
    "json_bytes",
    "pack_event",
    "ulid_value",
    "unpack_events",
]

#: Events per stored chunk at most (a flush writes one chunk or a few).
CHUNK = 1024

_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def json_bytes(value: Any) -> bytes:
    """JSON that never fails: unknown objects become their ``repr`` (events hold user data)."""
    return to_json(value, fallback=repr, inf_nan_mode="null", bytes_mode="base64")


def journal_row(run_id: str, step: JournalStep) -> tuple[Any, ...]:
    """A journal step as both SQL stores keep it: the run, the step's fields, its result as JSON."""
    result = None if step.result is None else json_bytes(step.result)
    return (run_id, step.step, step.position, step.kind, step.name, step.fingerprint, step.status, result)


def pack_event(event: Event) -> list[Any]:
    """An event as a compact JSON row (its run id is the row's key, not repeated)."""
    return [
        event.seq,
        event.type,
        event.event_id,
        event.timestamp,
        event.agent,
        event.instance_id,
        event.session_id,
        event.operation_id,
        event.parent_id,
        event.data,
    ]


def unpack_events(run_id: str, blob: bytes) -> list[Event]:
    """The events of one stored chunk."""
    return [
        Event(r[1], r[9], r[0], run_id, r[4], r[5], r[6], r[7], r[8], event_id=r[2], ts=r[3])
        for r in from_json(blob)
    ]


def chunks(events: Sequence[Event]) -> list[tuple[int, int, bytes]]:
    """``(first seq, last seq, JSON)`` of each chunk of at most :data:`CHUNK` consecutive events."""
    parts = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    return [(p[0].seq, p[-1].seq, json_bytes([pack_event(e) for e in p])) for p in parts]


def ulid_value(text: str) -> int:
    """The 128-bit value of a ULID string (0 for anything else: ids of old rows)."""
    value = 0
    for char in text.upper():
        digit = _CROCKFORD.get(char)
        if digit is None:
            return 0
        value = value * 32 + digit
    return value


class InterruptedEnd:
    """What ending a run as ``interrupted`` writes: its ``run_end`` event and the record's fields."""

    __slots__ = ("duration_ms", "ended_at", "error", "event", "usage")

    def __init__(
        self, event: Event, error: dict[str, Any], ended_at: float, duration_ms: float, usage: dict[str, Any]
    ) -> None:
        self.event = event
        self.error = error
        self.ended_at = ended_at
        self.duration_ms = duration_ms
        self.usage = usage


def interrupted_end(
    run_id: str, events: Sequence[Event], started_at: float, pid: int | None, host: str | None, last_seq: int
) -> InterruptedEnd:
    """The end of a run whose owner died, after its stored ``events``: a ``run_end`` at ``last_seq + 1``
    whose id is later than every event's (a new ULID), timed at the run's last sign of life."""
    ended_at = max(started_at, events[-1].timestamp) if events else started_at
    usage = usage_of(events).to_dict()
    error = interrupted_error(pid, host)
    duration_ms = round((ended_at - started_at) * 1000, 3)
    after = max((ulid_value(e.event_id) for e in events), default=0)
    end = Event(
        "run_end",
        {"status": "interrupted", "error": error, "duration_ms": duration_ms, "usage": usage},
        last_seq + 1,
        run_id,
        event_id=encode_ulid(max(new_ulid_int(), after + 1)),
        ts=max(time.time(), ended_at),
    )
    return InterruptedEnd(end, error, ended_at, duration_ms, usage)
