"""Server-sent events: the wire format, and the run streams every subscriber shares.

A run's stream reads the run store, so it shows runs of any process, resumes after any event, and
ends for every run: after ``run_end``; or, when the record is final and no ``run_end`` was logged
(a run that failed before its first event, one marked ``interrupted``), with a ``run_end`` made
from the record. ``id:`` is the event's ``seq``; ``Last-Event-ID`` or ``?after=`` resumes.

Subscribers never hold up a run: the run writes to the store and subscribers read from it. The
reading is shared: one :class:`RunFeed` per run polls the store (one subscriber at a time does the
poll, the others wait for its result) and keeps the last ``window`` events in memory. A subscriber
that falls further behind than that window holds nothing in memory: it catches up from the store
page by page, as a reconnecting client would, and then joins the window again. Quiet streams get a
``: heartbeat`` comment every ``heartbeat`` seconds, which also notices clients that went away.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import anyio
from pydantic_core import to_json

from pyflue import Event, PromptResult, RunRecord
from pyflue.stores.runs import RunStore

from .errors import error_body, public

__all__ = ["HEARTBEAT", "SSE_HEADERS", "Feeds", "RunFeed", "encode", "prompt_stream", "run_stream"]

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


class Message(NamedTuple):
    """An event as its subscribers receive it: encoded once, shared by all of them."""

    seq: int
    last: bool  # a run_end: the stream ends after it
    wire: bytes

    @classmethod
    def of(cls, event: Event, debug: bool) -> Message:
        return cls(event.seq, event.type == "run_end", _event(event, debug))


class RunFeed:
    """One run's recent events, read from the store once for all its subscribers."""

    def __init__(self, store: RunStore, run_id: str, poll_interval: float, window: int, debug: bool) -> None:
        self.store = store
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.debug = debug
        self.messages: deque[Message] = deque(maxlen=window)
        self.last_seq = 0
        self.end_seen = False  # a run_end is in the log
        self.ended = False  # nothing more will come
        self.record: RunRecord | None = None  # the final record, once seen
        self.subscribers = 0
        self._changed = anyio.Event()
        self._polling = False
        self._next_poll = 0.0

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
        batch = await self.store.read_events(self.run_id, after_seq=seq, limit=_PAGE)
        return [Message.of(e, self.debug) for e in batch]

    async def advance(self) -> None:
        """Wait for the next poll's result; poll the store if no other subscriber is polling."""
        if self._polling:
            await self._changed.wait()
            return
        self._polling = True
        try:
            delay = self._next_poll - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            await self._poll()
        finally:
            self._next_poll = anyio.current_time() + self.poll_interval
            self._polling = False
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def _poll(self) -> None:
        settled = self.record is not None
        batch = await self.store.read_events(self.run_id, after_seq=self.last_seq, limit=_PAGE)
        if batch:
            self.messages.extend(Message.of(e, self.debug) for e in batch)
            self.last_seq = batch[-1].seq
            if any(e.type == "run_end" for e in batch):
                self.end_seen = self.ended = True
            if len(batch) == _PAGE:
                self._next_poll = 0.0
            return
        if settled:  # final, and one read after that found nothing more: the log is complete
            self.ended = True
            return
        record = await self.store.get_run(self.run_id)
        if record is None:  # pruned while followed
            self.ended = True
        elif record.finished:
            self.record = record


class Feeds:
    """The feeds of the runs someone is following; a feed lives while it has subscribers."""

    def __init__(self, store: RunStore, poll_interval: float, window: int, debug: bool) -> None:
        self.store = store
        self.debug = debug
        self.poll_interval = poll_interval
        self.window = window
        self._feeds: dict[str, RunFeed] = {}

    @contextmanager
    def follow(self, run_id: str) -> Iterator[RunFeed]:
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = RunFeed(
                self.store, run_id, self.poll_interval, self.window, self.debug
            )
        feed.subscribers += 1
        try:
            yield feed
        finally:
            feed.subscribers -= 1
            if not feed.subscribers and self._feeds.get(run_id) is feed:
                del self._feeds[run_id]

    def __len__(self) -> int:
        return len(self._feeds)


async def run_stream(
    feeds: Feeds, run_id: str, after: int, heartbeat: float, *, debug: bool
) -> AsyncIterator[bytes]:
    """The SSE messages of a run after ``after``, until its end."""
    with feeds.follow(run_id) as feed:
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
                if feed.record is not None and not feed.end_seen and position >= feed.last_seq:
                    yield encode("run_end", public(end_event(feed.record, position + 1), debug=debug))
                return
            with anyio.move_on_after(heartbeat) as quiet:
                while feed.last_seq <= position and not feed.ended:
                    await feed.advance()
            if quiet.cancelled_caught:
                yield HEARTBEAT


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
