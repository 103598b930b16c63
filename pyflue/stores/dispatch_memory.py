"""The in-memory dispatch store: the contract without durability, for tests and ephemeral use.

Every method runs without awaiting inside its critical section, so each one is atomic on its event
loop. Records are immutable; inputs, outcomes and events are copied in and out so callers never
share mutable state with the store.
"""

from __future__ import annotations

import bisect
import builtins
import copy
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..errors import ConfigError, NotFoundError, shown
from ..events import Event
from .changes import Topics, Watch
from .dispatches import (
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
    closed,
    completed,
    decode_cursor,
    decode_event,
    encode_cursor,
    encode_event,
    failed,
    from_us,
    holds,
    key_conflict,
    on_cancel,
    ready_at_us,
    renewed,
    taken_over,
    to_us,
)

__all__ = ["MemoryDispatchStore"]

_Target = tuple[str, str, str]


class MemoryDispatchStore:
    """Dispatches in this process's memory. ``clock`` (seconds since the epoch) is the store's
    time, injectable so leases and backoff can be tested without sleeping."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, DispatchRecord] = {}
        self._positions: dict[str, int] = {}
        self._order: list[str] = []  # dispatch ids in acceptance order (position = index + 1)
        self._keys: dict[str, str] = {}
        self._pending: dict[_Target, deque[str]] = {}  # queued/running ids per session, in order
        self._attempts: dict[str, list[Attempt]] = {}
        self._events: dict[str, list[tuple[int, bytes]]] = {}
        self._signal = ChangeSignal()
        self._items = Topics()  # one topic per dispatch: its record or events changed

    def _now(self) -> datetime:
        return from_us(round(self._clock() * 1_000_000))

    @staticmethod
    def _copy(record: DispatchRecord) -> DispatchRecord:
        """A record whose mutable parts (list input, outcome values) the caller may change freely;
        a record is otherwise immutable, so the rest is shared."""
        update: dict[str, Any] = {}
        if not isinstance(record.input, str):
            update["input"] = copy.deepcopy(record.input)
        if record.outcome is not None:
            update["outcome"] = record.outcome.model_copy(deep=True)
        return record.model_copy(update=update) if update else record

    def _changed(self) -> None:
        self._signal.notify()

    def _finish(self, record: DispatchRecord) -> None:
        """Store ``record``; a finished item leaves its session's queue."""
        self._records[record.dispatch_id] = record
        self._items.touch(record.dispatch_id)
        if record.finished:
            queue = self._pending.get(record.target)
            if queue is not None:
                queue.remove(record.dispatch_id)
                if not queue:
                    del self._pending[record.target]

    def _close_attempt(
        self, record: DispatchRecord, now: datetime, status: AttemptStatus, error: dict[str, Any] | None
    ) -> None:
        attempts = self._attempts[record.dispatch_id]
        attempts[-1] = closed(attempts[-1], now, status, error)

    # -- the DispatchStore protocol -----------------------------------------------------------------

    async def enqueue(self, record: DispatchRecord) -> DispatchRecord:
        if record.key is not None and record.key in self._keys:
            return self._copy(key_conflict(self._records[self._keys[record.key]], record))
        if record.dispatch_id in self._records:
            raise ConfigError(f"dispatch id {record.dispatch_id!r} exists already; leave it to the default")
        stored = accepted(self._copy(record), self._now())
        self._records[stored.dispatch_id] = stored
        self._order.append(stored.dispatch_id)
        self._positions[stored.dispatch_id] = len(self._order)
        if stored.key is not None:
            self._keys[stored.key] = stored.dispatch_id
        self._pending.setdefault(stored.target, deque()).append(stored.dispatch_id)
        self._changed()
        return self._copy(stored)

    async def claim(self, worker: str, lease_seconds: float, limit: int = 1) -> list[DispatchRecord]:
        check_lease(worker, lease_seconds, limit)
        now = self._now()
        now_us = to_us(now)
        taken: list[DispatchRecord] = []
        ended = False
        while len(taken) < limit:
            heads = sorted(
                (ready, self._positions[head.dispatch_id], head)
                for queue in self._pending.values()
                if (ready := ready_at_us(head := self._records[queue[0]])) is not None and ready <= now_us
            )
            if not heads:
                break
            moved = False
            for _, _, head in heads[: limit - len(taken)]:
                if head.status == "running":
                    final, error = taken_over(head, now)
                    self._close_attempt(head, now, "crashed", error)
                    if final is not None:
                        self._finish(final)
                        moved = ended = True  # the session's next item may be claimable now
                        continue
                running, attempt = claimed(head, worker, now, lease_seconds)
                self._records[running.dispatch_id] = running
                self._attempts.setdefault(running.dispatch_id, []).append(attempt)
                taken.append(running)
            if not moved:
                break
        if taken or ended:
            self._changed()
        return [self._copy(r) for r in taken]

    async def renew(self, dispatch_id: str, worker: str, lease_seconds: float) -> bool:
        check_lease(worker, lease_seconds)
        record = self._records.get(dispatch_id)
        if record is None or not holds(record, worker):
            return False
        self._records[dispatch_id] = renewed(record, self._now(), lease_seconds)
        return True

    def _end(
        self,
        dispatch_id: str,
        worker: str,
        transition: Callable[[DispatchRecord, datetime], DispatchRecord],
        error: dict[str, Any] | None = None,
    ) -> DispatchRecord | None:
        """Apply a lease holder's finishing ``transition`` and close its attempt."""
        record = self._records.get(dispatch_id)
        if record is None or not holds(record, worker):
            return None
        now = self._now()
        new = transition(record, now)
        self._close_attempt(record, now, attempt_end(new), error)
        self._finish(new)
        self._changed()
        return self._copy(new)

    async def complete(
        self, dispatch_id: str, worker: str, outcome: DispatchOutcome
    ) -> DispatchRecord | None:
        kept = outcome.model_copy(deep=True)
        return self._end(dispatch_id, worker, lambda r, now: completed(r, now, kept))

    async def fail(
        self, dispatch_id: str, worker: str, error: dict[str, Any], retry_after: float | None
    ) -> DispatchRecord | None:
        kept = copy.deepcopy(error)
        return self._end(dispatch_id, worker, lambda r, now: failed(r, now, kept, retry_after), kept)

    async def finish_cancelled(self, dispatch_id: str, worker: str) -> DispatchRecord | None:
        return self._end(dispatch_id, worker, cancelled)

    async def cancel(self, dispatch_id: str, reason: str) -> DispatchRecord | None:
        record = self._records.get(dispatch_id)
        if record is None:
            return None
        now = self._now()
        decided = on_cancel(record, now, reason)
        if decided is None:
            return self._copy(record)
        new, crashed = decided
        if crashed is not None:
            self._close_attempt(record, now, "crashed", crashed)
        self._finish(new)
        self._changed()
        return self._copy(new)

    async def get(self, dispatch_id: str) -> DispatchRecord | None:
        record = self._records.get(dispatch_id)
        return None if record is None else self._copy(record)

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
        end = len(self._order) if cursor is None else min(decode_cursor(cursor) - 1, len(self._order))
        found: list[DispatchRecord] = []
        position = end
        while position > 0 and len(found) <= limit:
            record = self._records[self._order[position - 1]]
            if (
                (agent is None or record.agent == agent)
                and (instance_id is None or record.instance_id == instance_id)
                and (session_id is None or record.session_id == session_id)
                and (status is None or record.status == status)
            ):
                found.append(record)
            position -= 1
        more = len(found) > limit
        page = [self._copy(r) for r in found[:limit]]
        return DispatchPage(page, encode_cursor(self._positions[page[-1].dispatch_id]) if more else None)

    async def attempts(self, dispatch_id: str) -> builtins.list[Attempt]:
        return [a.model_copy(deep=True) for a in self._attempts.get(dispatch_id, [])]

    async def append_events(self, dispatch_id: str, events: Sequence[Event]) -> None:
        if dispatch_id not in self._records:
            raise NotFoundError(
                f"no dispatch {shown(dispatch_id)}; append events only to an enqueued dispatch"
            )
        stored = self._events.setdefault(dispatch_id, [])
        check_events(dispatch_id, events, stored[-1][0] if stored else 0)
        stored.extend((e.seq, encode_event(e)) for e in events)
        if events:
            self._changed()
            self._items.touch(dispatch_id)

    async def read_events(
        self, dispatch_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> builtins.list[Event]:
        stored = self._events.get(dispatch_id, [])
        start = bisect.bisect_right(stored, after_seq, key=lambda item: item[0])
        chosen = stored[start:] if limit is None else stored[start : start + max(limit, 0)]
        return [decode_event(blob) for _, blob in chosen]

    async def wait_changed(self, timeout: float) -> bool:
        return await self._signal.wait(timeout)

    async def watch(self, dispatch_id: str) -> Watch:
        """A watch of one dispatch, woken by this store's writes (the only writer it has)."""
        return self._items.watch(dispatch_id)

    async def aclose(self) -> None:
        self._changed()
        self._items.close()
