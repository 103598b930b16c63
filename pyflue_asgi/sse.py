"""Server-sent events: the wire format, and the one follower every event stream (runs, dispatches) uses.

A stream follows an :class:`EventLog`: events read after a ``seq``, whether the log is finished, and a
watch that wakes when the log may have changed. A run's log (:class:`RunLog`) ends after ``run_end``;
or, when the record is final and no ``run_end`` was logged (a run that failed before its first event,
one marked ``interrupted``), with a ``run_end`` made from the record. A dispatch's log
(:class:`DispatchLog`) ends once the dispatch is finished and its events are sent. ``id:`` is the
event's ``seq``; ``Last-Event-ID`` or ``?after=`` resumes.

Subscribers never hold up the writer: it writes to the store and subscribers read from it. The
reading is shared: one :class:`Feed` per followed log reads the store (one subscriber at a time does
the read, the others wait for its result) and keeps the last ``window`` events in memory. Between
reads the feed waits on the store's watch (``RunStore.watch`` / ``DispatchStore.watch``), so it reads
when something was committed — at once for PostgreSQL (``NOTIFY``, any process or host) and for
writers in this process; within the SQLite store's own poll for other processes — and at the latest
every ``poll_interval`` seconds. A subscriber that falls further behind than the window holds nothing
in memory: it catches up from the store page by page, as a reconnecting client would, and then joins
the window again. Quiet streams get a ``: heartbeat`` comment every ``heartbeat`` seconds, which also
notices clients that went away.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

import anyio
from pydantic_core import to_json
from starlette.requests import Request

from pyflue import Event, PromptResult, RunRecord
from pyflue.stores.changes import Watch
from pyflue.stores.dispatches import DispatchStore
from pyflue.stores.runs import RunStore

from .bodies import query_int
from .errors import error_body, public

__all__ = [
    "HEARTBEAT",
    "SSE_HEADERS",
    "DispatchLog",
    "EventLog",
    "Feed",
    "Feeds",
    "RunLog",
    "dispatch_stream",
    "encode",
    "follow",
    "prompt_stream",
    "resume_after",
    "run_stream",
]

HEARTBEAT = b": heartbeat\n\n"
#: Headers of every SSE answer: no caching, no proxy buffering.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_PAGE = 500
_SAFE_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def encode(kind: str, data: Any, id: int | None = None) -> bytes:
    """One SSE message; ``kind`` is left out when it is not a plain token (custom event types)."""
    head = f"id: {id}\n" if id is not None else ""
    if _SAFE_TYPE.match(kind):
        head += f"event: {kind}\n"
    return head.encode() + b"data: " + to_json(data) + b"\n\n"


def resume_after(request: Request, max_seq: int) -> int:
    """Where a stream starts: after the ``Last-Event-ID`` a reconnecting client sends, else after
    ``?after=`` (0: from the start)."""
    resume = request.headers.get("last-event-id")
    if resume is not None and resume.strip().isdigit():
        return min(int(resume), max_seq)
    return query_int(request, "after", 0, 0, max_seq)


def _event(event: Event, debug: bool) -> bytes:
    return encode(event.type, public(event.model_dump(), debug=debug), event.seq)


def end_event(record: RunRecord, seq: int) -> dict[str, Any]:
    """A ``run_end`` for a final record whose log has none (the run never got to write it)."""
    data: dict[str, Any] = {"status": record.status}
    if record.error is not None:
        data["error"] = record.error
    else:
        data["result"] = record.result
    data.update(duration_ms=record.duration_ms, usage=record.usage.to_dict())
    return Event("run_end", data, seq, record.run_id).model_dump()


class EventLog(Protocol):
    """A log of events with increasing ``seq`` that ends, as a stream follows it."""

    async def read(self, after_seq: int, limit: int) -> list[Event]:
        """Stored events with ``seq > after_seq``, in order, at most ``limit``."""
        ...

    async def finished(self) -> tuple[bool, Any]:
        """Whether nothing more will be written, and the final record (``None`` when it is gone)."""
        ...

    async def watch(self) -> Watch:
        """A watch of the log (see :class:`pyflue.stores.changes.Watch`)."""
        ...

    def last(self, event: Event) -> bool:
        """Whether the stream ends after ``event``."""
        ...

    def epilogue(self, record: Any, seq: int, debug: bool) -> bytes | None:
        """The message that closes a finished log with no last event (numbered ``seq``), if any."""
        ...


class RunLog:
    """A run's log in a run store; it ends with ``run_end`` (made from the record if not logged)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    async def read(self, after_seq: int, limit: int) -> list[Event]:
        return await self.store.read_events(self.run_id, after_seq=after_seq, limit=limit)

    async def finished(self) -> tuple[bool, Any]:
        record = await self.store.get_run(self.run_id)
        return record is None or record.finished, record

    async def watch(self) -> Watch:
        return await self.store.watch(self.run_id)

    def last(self, event: Event) -> bool:
        return event.type == "run_end"

    def epilogue(self, record: Any, seq: int, debug: bool) -> bytes | None:
        if not isinstance(record, RunRecord):
            return None
        return encode("run_end", public(end_event(record, seq), debug=debug))


class DispatchLog:
    """The delivery events of a dispatch (every attempt); it ends once the dispatch is finished. The
    worker stores a delivery's events before it reports the outcome, so the events read after a
    final record was seen are all of them."""

    def __init__(self, store: DispatchStore, dispatch_id: str) -> None:
        self.store = store
        self.dispatch_id = dispatch_id

    async def read(self, after_seq: int, limit: int) -> list[Event]:
        return await self.store.read_events(self.dispatch_id, after_seq=after_seq, limit=limit)

    async def finished(self) -> tuple[bool, Any]:
        record = await self.store.get(self.dispatch_id)
        return record is None or record.finished, record

    async def watch(self) -> Watch:
        return await self.store.watch(self.dispatch_id)

    def last(self, event: Event) -> bool:
        return False

    def epilogue(self, record: Any, seq: int, debug: bool) -> bytes | None:
        return None


class Message(NamedTuple):
    """An event as its subscribers receive it: encoded once, shared by all of them."""

    seq: int
    last: bool  # the stream ends after it
    wire: bytes


class Feed:
    """One log's recent events, read from the store once for all its subscribers."""

    def __init__(self, log: EventLog, poll_interval: float, window: int, debug: bool) -> None:
        self.log = log
        self.poll_interval = poll_interval
        self.debug = debug
        self.messages: deque[Message] = deque(maxlen=window)
        self.last_seq = 0
        self.end_seen = False  # the log's last event was read
        self.ended = False  # nothing more will come
        self.settled = False  # the log was seen finished; one more read completes it
        self.record: Any = None  # the final record, once seen
        self.subscribers = 0
        self._changed = anyio.Event()
        self._reading = False
        self._watch: Watch | None = None
        self._again = False  # the last read filled a page: read again without waiting

    def message(self, event: Event) -> Message:
        return Message(event.seq, self.log.last(event), _event(event, self.debug))

    def after(self, seq: int) -> list[Message] | None:
        """The windowed messages after ``seq``, or ``None`` when the window no longer reaches back."""
        messages = self.messages
        if not messages or messages[-1].seq <= seq:
            return []
        if messages[0].seq > seq + 1:
            return None
        start = bisect.bisect_right(messages, seq, key=lambda m: m.seq)
        return list(itertools.islice(messages, start, None))

    async def read(self, seq: int) -> list[Message]:
        """Messages after ``seq`` straight from the store (for a subscriber behind the window)."""
        return [self.message(e) for e in await self.log.read(seq, _PAGE)]

    async def advance(self) -> None:
        """Wait for the next read's result; read (once the log may have changed) if no other
        subscriber is reading."""
        if self._reading:
            await self._changed.wait()
            return
        self._reading = True
        try:
            if self._watch is None:
                with anyio.CancelScope(shield=True):  # a watch taken is always closed with the feed
                    self._watch = await self.log.watch()  # before the first read: no change is missed
            elif not self._again:
                await self._watch.wait(self.poll_interval)
            await self._read()
        finally:
            self._reading = False
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def _read(self) -> None:
        settled = self.settled
        batch = await self.log.read(self.last_seq, _PAGE)
        self._again = len(batch) == _PAGE
        if batch:
            fresh = [self.message(e) for e in batch]
            self.messages.extend(fresh)
            self.last_seq = batch[-1].seq
            if any(m.last for m in fresh):
                self.end_seen = self.ended = True
            return
        if settled:  # finished, and one read after that found nothing more: the log is complete
            self.ended = True
            return
        finished, record = await self.log.finished()
        if finished:
            self.settled, self.record = True, record
            self._again = True
            if record is None:  # gone (pruned) while followed
                self.ended = True

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()


class Feeds:
    """The feeds of the runs someone is following; a feed lives while it has subscribers."""

    def __init__(self, store: RunStore, poll_interval: float, window: int, debug: bool) -> None:
        self.store = store
        self.debug = debug
        self.poll_interval = poll_interval
        self.window = window
        self._feeds: dict[str, Feed] = {}

    @contextmanager
    def follow(self, run_id: str) -> Iterator[Feed]:
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = Feed(
                RunLog(self.store, run_id), self.poll_interval, self.window, self.debug
            )
        feed.subscribers += 1
        try:
            yield feed
        finally:
            feed.subscribers -= 1
            if not feed.subscribers and self._feeds.get(run_id) is feed:
                del self._feeds[run_id]
                feed.close()

    def __len__(self) -> int:
        return len(self._feeds)


async def follow(feed: Feed, after: int, heartbeat: float) -> AsyncIterator[bytes]:
    """The SSE messages of ``feed``'s log after ``after``, until it ends."""
    position = after
    while True:
        messages = feed.after(position)
        if messages is None:  # behind the window: catch up from the store
            messages = await feed.read(position)
        for message in messages:
            position = message.seq
            yield message.wire
            if message.last:
                return
        if messages:
            continue
        if feed.ended:
            if not feed.end_seen and position >= feed.last_seq:
                closing = feed.log.epilogue(feed.record, position + 1, feed.debug)
                if closing is not None:
                    yield closing
            return
        with anyio.move_on_after(heartbeat) as quiet:
            while feed.last_seq <= position and not feed.ended:
                await feed.advance()
        if quiet.cancelled_caught:
            yield HEARTBEAT


async def dispatch_stream(
    store: DispatchStore,
    dispatch_id: str,
    after: int,
    heartbeat: float,
    *,
    poll_interval: float,
    window: int,
    debug: bool,
) -> AsyncIterator[bytes]:
    """The SSE messages of a dispatch's deliveries after ``after``, until it is finished (a feed of
    its own: one client follows one dispatch)."""
    feed = Feed(DispatchLog(store, dispatch_id), poll_interval, window, debug)
    try:
        async for message in follow(feed, after, heartbeat):
            yield message
    finally:
        feed.close()


async def run_stream(
    feeds: Feeds, run_id: str, after: int, heartbeat: float, *, debug: bool
) -> AsyncIterator[bytes]:
    """The SSE messages of a run after ``after``, until its end (``debug``: the feeds' setting)."""
    with feeds.follow(run_id) as feed:
        async for message in follow(feed, after, heartbeat):
            yield message


async def prompt_stream(
    items: AsyncIterable[Event | PromptResult],
    reply: Callable[[PromptResult], dict[str, Any]],
    *,
    debug: bool,
) -> AsyncIterator[bytes]:
    """An operation's events as SSE, then a ``result`` (or an ``error``) message; the stream ends
    there. A client that leaves cancels the operation (the core's stream does, when closed)."""
    try:
        async for item in items:
            if isinstance(item, PromptResult):
                yield encode("result", reply(item))
            else:
                yield encode(item.type, item.model_dump())
    except Exception as exc:
        yield encode("error", error_body(exc, debug=debug))
