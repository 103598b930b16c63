"""The event envelope, the bus that delivers it, and process-wide observers.

One correlated stream: every operation, model call, delta, tool call, task, compaction and run
lifecycle step is an :class:`Event`. Observers (``init(on_event=...)``, :func:`observe`) may be sync
or async. A sync observer is called inline and must be quick (the OTel observer, the CLI renderer,
SSE queues are); one that raises is logged and skipped. An async observer gets its own bounded
queue drained by a pump task that lives as long as the outermost operation or run, so a slow one
never blocks or reorders the operation; when the operation ends its queue is drained for at most
``EventBus.drain_timeout`` seconds. Overflow policy: past ``buffer`` queued events an observer loses
new ``text_delta`` / ``thinking_delta`` events first; lifecycle events are never dropped.

Events are built only when someone listens, and an event's ULID and ISO timestamp are encoded on
first read, which keeps a streamed delta cheap.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ConfigDict

from .ids import _counter, encode_ulid, ulid_int_at

__all__ = ["BUILTIN_TYPES", "Event", "EventBus", "EventModel", "Observer", "observe", "unobserve"]

_log = logging.getLogger("pyflue.events")

Observer = Callable[["Event"], "Awaitable[None] | None"]

#: Event types an observer may lose under overflow; everything else is lifecycle and never dropped.
DROPPABLE = frozenset({"text_delta", "thinking_delta"})
#: The catalogue's built-in types; ``ctx.emit`` may not reuse them.
BUILTIN_TYPES = frozenset(
    {
        "run_start",
        "run_end",
        "run_resume",
        "log",
        "operation_start",
        "operation_end",
        "model_start",
        "model_end",
        "text_delta",
        "thinking_delta",
        "tool_start",
        "tool_end",
        "task_start",
        "task_end",
        "compaction_start",
        "compaction_end",
        "abort",
        "dispatch_accepted",
        "dispatch_started",
        "dispatch_delivered",
        "dispatch_failed",
        "dispatch_cancelled",
        "error",
        "fs_write",
        "shell_exec",
    }
)


class EventModel(BaseModel):
    """The envelope's JSON schema and validation (the wire and storage form of :class:`Event`)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str
    event_id: str
    ts: str
    seq: int
    run_id: str | None = None
    agent: str | None = None
    instance_id: str | None = None
    session_id: str | None = None
    operation_id: str | None = None
    parent_id: str | None = None
    data: dict[str, Any] = {}


class Event:
    """One event. Field names and JSON form are :class:`EventModel`'s; ``model_dump()``,
    ``model_dump_json()`` and ``Event.model_validate()`` behave as on a pydantic model."""

    __slots__ = (
        "_id",
        "_ts",
        "agent",
        "data",
        "instance_id",
        "operation_id",
        "parent_id",
        "run_id",
        "seq",
        "session_id",
        "type",
    )
    model_fields: ClassVar[list[str]] = list(EventModel.model_fields)

    def __init__(
        self,
        type: str,
        data: dict[str, Any],
        seq: int = 0,
        run_id: str | None = None,
        agent: str | None = None,
        instance_id: str | None = None,
        session_id: str | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
        *,
        event_id: int | str | None = None,
        ts: float | str | None = None,
    ) -> None:
        self.type = type
        self.data = data
        self.seq = seq
        self.run_id = run_id
        self.agent = agent
        self.instance_id = instance_id
        self.session_id = session_id
        self.operation_id = operation_id
        self.parent_id = parent_id
        self._id: int | str = next(_counter) if event_id is None else event_id
        self._ts: float | str = time.time() if ts is None else ts

    @property
    def event_id(self) -> str:
        """A ULID: the event's millisecond, then the process's random base plus a process-wide
        counter (encoded on first read; stamping a delta is just ``next(counter)``)."""
        if isinstance(self._id, int):
            self._id = encode_ulid(ulid_int_at(self.timestamp, self._id))
        return self._id

    @property
    def ts(self) -> str:
        if not isinstance(self._ts, str):
            self._ts = datetime.fromtimestamp(self._ts, UTC).isoformat(timespec="microseconds")
        return self._ts

    @property
    def timestamp(self) -> float:
        """Seconds since the epoch (for exporters that want numbers)."""
        if isinstance(self._ts, str):
            return datetime.fromisoformat(self._ts).timestamp()
        return self._ts

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {
            "type": self.type,
            "event_id": self.event_id,
            "ts": self.ts,
            "seq": self.seq,
            "run_id": self.run_id,
            "agent": self.agent,
            "instance_id": self.instance_id,
            "session_id": self.session_id,
            "operation_id": self.operation_id,
            "parent_id": self.parent_id,
            "data": self.data,
        }

    def model_dump_json(self) -> str:
        from pydantic_core import to_json

        return to_json(self.model_dump()).decode()

    @classmethod
    def model_validate(cls, value: dict[str, Any] | EventModel) -> Event:
        model = value if isinstance(value, EventModel) else EventModel.model_validate(value)
        return cls(
            model.type,
            model.data,
            model.seq,
            model.run_id,
            model.agent,
            model.instance_id,
            model.session_id,
            model.operation_id,
            model.parent_id,
            event_id=model.event_id,
            ts=model.ts,
        )

    @classmethod
    def model_validate_json(cls, value: str | bytes) -> Event:
        return cls.model_validate(EventModel.model_validate_json(value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Event({self.type!r}, seq={self.seq}, data={self.data!r})"


class _Subscriber:
    __slots__ = (
        "buffer",
        "callback",
        "delivered",
        "dropped",
        "failed",
        "handover",
        "is_async",
        "offered",
        "owner",
        "pumps",
        "queue",
        "wake",
    )

    def __init__(self, callback: Observer, buffer: int) -> None:
        self.callback = callback
        self.is_async = inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
            getattr(callback, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.buffer = buffer
        self.queue: deque[Event] = deque()
        self.dropped = 0
        self.failed = 0
        self.wake: anyio.Event | None = None
        # Concurrent operations each run a pump; one of them (``owner``) delivers, the others stand by
        # for a ``handover``, so an observer's calls never overlap or change order.
        self.offered = 0
        self.delivered = 0
        self.pumps = 0
        self.owner: _Pump | None = None
        self.handover: anyio.Event | None = None

    def offer(self, event: Event) -> None:
        if not self.is_async:
            try:
                self.callback(event)
            except Exception:
                self._failed()
            return
        if len(self.queue) >= self.buffer and event.type in DROPPABLE:
            self.dropped += 1
            return
        self.queue.append(event)
        self.offered += 1
        self.notify()

    def notify(self) -> None:
        wake, self.wake = self.wake, None
        if wake is not None:
            wake.set()

    def _failed(self) -> None:
        self.failed += 1
        if self.failed == 1:
            _log.exception("event observer %r raised; it keeps receiving events", self.callback)

    async def pump(self, me: _Pump) -> None:
        self.pumps += 1
        try:
            while not me.stop:
                if self.owner is None:
                    self.owner = me
                if self.owner is not me:
                    if self.handover is None:
                        self.handover = anyio.Event()
                    await self.handover.wait()
                elif self.queue:
                    event = self.queue.popleft()
                    try:
                        await self.callback(event)  # type: ignore[misc]
                    except Exception:
                        self._failed()
                    finally:
                        self.delivered += 1
                else:
                    self.wake = anyio.Event()
                    await self.wake.wait()
        finally:
            self.pumps -= 1
            if self.owner is me:
                self.owner = None
                handover, self.handover = self.handover, None
                if handover is not None:
                    handover.set()
            if not self.pumps:  # events of a finished event loop must not linger
                self.wake = self.handover = None


class _Pump:
    """One delivering scope's pump; ``stop`` asks it to finish its current call and leave."""

    __slots__ = ("stop",)

    def __init__(self) -> None:
        self.stop = False


_global: list[_Subscriber] = []
# The async subscribers the enclosing delivering scopes pump (a nested scope pumps only the others).
_pumping: contextvars.ContextVar[frozenset[_Subscriber]] = contextvars.ContextVar(
    "pyflue_pumping", default=frozenset()
)
_sink: contextvars.ContextVar[Callable[[Event], None] | None] = contextvars.ContextVar(
    "pyflue_sink", default=None
)


def observe(callback: Observer, *, buffer: int = 10_000) -> Observer:
    """Receive every event of every run and operation in this process (until :func:`unobserve`)."""
    _global.append(_Subscriber(callback, buffer))
    return callback


def unobserve(callback: Observer) -> None:
    # Equality, not identity: ``obj.method`` makes a new bound method object on every access.
    _global[:] = [s for s in _global if s.callback != callback]


class EventBus:
    """Delivers one correlation scope's events (a run, or an agent instance outside runs) and
    numbers them: ``seq`` is strictly increasing per bus."""

    drain_timeout: float = 2.0

    def __init__(self, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.seq = 0
        self._subscribers: list[_Subscriber] = []

    def subscribe(self, callback: Observer, *, buffer: int = 10_000) -> Observer:
        self._subscribers.append(_Subscriber(callback, buffer))
        return callback

    def unsubscribe(self, callback: Observer) -> None:
        self._subscribers = [s for s in self._subscribers if s.callback != callback]

    @property
    def active(self) -> bool:
        """Whether an event emitted now would reach anyone (else callers skip building it)."""
        return bool(self._subscribers or _global or _sink.get() is not None)

    def emit(
        self,
        type: str,
        data: dict[str, Any],
        agent: str | None = None,
        instance_id: str | None = None,
        session_id: str | None = None,
        operation_id: str | None = None,
        parent_id: str | None = None,
    ) -> Event | None:
        sink = _sink.get()
        if not (self._subscribers or _global or sink is not None):
            self.seq += 1
            return None
        self.seq += 1
        event = Event(
            type, data, self.seq, self.run_id, agent, instance_id, session_id, operation_id, parent_id
        )
        for subscriber in self._subscribers:
            subscriber.offer(event)
        for subscriber in _global:
            subscriber.offer(event)
        if sink is not None:
            sink(event)
        return event

    def delivering(self) -> AbstractAsyncContextManager[None]:
        """Scope of an operation or run: async observers are pumped while it lasts. Nested scopes
        (a task inside an operation) reuse the outer pump, so one tree's events stay in order; a
        nested scope of another bus (a workflow run started from a tool) pumps that bus's own.
        With no async observer to pump the scope is a shared no-op (every operation enters one)."""
        pumped = _pumping.get()
        subscribers = [s for s in (*self._subscribers, *_global) if s.is_async and s not in pumped]
        if not subscribers:
            return _IDLE
        return self._pumping(pumped, subscribers)

    @asynccontextmanager
    async def _pumping(
        self, pumped: frozenset[_Subscriber], subscribers: list[_Subscriber]
    ) -> AsyncIterator[None]:
        token = _pumping.set(pumped | frozenset(subscribers))
        pumps = [(subscriber, _Pump()) for subscriber in subscribers]
        try:
            async with anyio.create_task_group() as tg:
                for subscriber, pump in pumps:
                    tg.start_soon(subscriber.pump, pump)
                try:
                    yield
                finally:
                    # Every event offered so far is delivered (by this scope's pump or a concurrent
                    # operation's), then this scope's pumps leave after their current call: cancelling
                    # one mid-call would lose that event.
                    targets = [s.offered for s in subscribers]
                    with anyio.move_on_after(self.drain_timeout, shield=True):
                        while any(s.delivered < t for s, t in zip(subscribers, targets, strict=True)):  # noqa: ASYNC110
                            await anyio.sleep(0.001)
                        for subscriber, pump in pumps:
                            pump.stop = True
                            subscriber.notify()
                        while any(s.owner is p for s, p in pumps):  # noqa: ASYNC110 - bounded poll
                            await anyio.sleep(0.001)
                    tg.cancel_scope.cancel()
        finally:
            _pumping.reset(token)


#: The delivering scope of a bus with no async observer: stateless, so one serves every operation.
_IDLE: AbstractAsyncContextManager[None] = nullcontext()


def set_sink(sink: Callable[[Event], None] | None) -> contextvars.Token[Callable[[Event], None] | None]:
    """Route every event emitted in this context (and its child tasks) to ``sink`` too: how
    ``session.stream()`` sees exactly its own operation tree."""
    return _sink.set(sink)


def reset_sink(token: contextvars.Token[Callable[[Event], None] | None]) -> None:
    _sink.reset(token)
