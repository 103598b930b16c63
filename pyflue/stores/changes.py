"""Waiting for a store to change: counted topics, and the :class:`Watch` every store's ``watch`` returns.

A store names what can change as *topics* (a run, a dispatch). Writers :meth:`Topics.touch` a topic when
they commit a change; a reader takes a :class:`Watch` of the topic *before* it reads, and between reads
calls ``await watch.wait(timeout)``, which returns as soon as the topic changed since the previous
``wait`` returned (or since the watch began). Changes are counted, not signalled, so a change committed
while the reader was reading is never lost; wake-ups may be spurious (the reader just reads again).

Who touches the topics depends on the store: the memory stores touch them in their write methods; the
PostgreSQL stores from a thread that ``LISTEN`` s for ``NOTIFY`` (every process and host); the SQLite
stores in their write methods (writers in this process, through the same store object) while a watch's
``probe`` notices other writers by polling a cheap version of the file every ``poll`` seconds.

:class:`Topics` is thread-safe and independent of the event loop: each waiting call is woken through a
socket pair (the toucher writes a byte; the waiter's loop, asyncio or trio, sees the socket readable).
"""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["Probe", "Topics", "Watch"]

#: Reads a cheap value that differs whenever the store may have changed (polled by a watch).
Probe = Callable[[], Awaitable[object]]


class _Waker:
    """One waiting call: a socket pair the toucher writes to."""

    __slots__ = ("_recv", "_send")

    def __init__(self) -> None:
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)

    def poke(self) -> None:
        """Wake the waiter (any thread; never blocks; harmless once closed)."""
        try:
            self._send.send(b"!")
        except OSError:
            pass  # the buffer is full (a wake-up is pending anyway) or the waiter is gone

    async def wait(self, timeout: float) -> bool:
        with anyio.move_on_after(max(timeout, 0.0)):
            await anyio.wait_readable(self._recv)
            return True
        return False

    def close(self) -> None:
        self._recv.close()
        self._send.close()


class _Topic:
    __slots__ = ("count", "wakers", "watchers")

    def __init__(self) -> None:
        self.count = 0
        self.watchers = 0
        self.wakers: set[_Waker] = set()


class Topics:
    """Change counts of the topics someone watches, and the calls waiting for them to move.

    A touch of a topic nobody watches or waits for costs a dictionary lookup and counts nothing.
    :meth:`close` counts a change on every topic and makes every later wait return at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._closed = False

    def touch(self, topic: str) -> None:
        """Count a change of ``topic`` and wake its waiters (any thread)."""
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                return
            entry.count += 1
            wakers = list(entry.wakers)
        for waker in wakers:
            waker.poke()

    def touch_all(self) -> None:
        """Count a change on every topic (whatever happened, every reader reads again)."""
        with self._lock:
            wakers = [w for entry in self._topics.values() for w in entry.wakers]
            for entry in self._topics.values():
                entry.count += 1
        for waker in wakers:
            waker.poke()

    def count(self, topic: str) -> int:
        """How many changes of ``topic`` were counted (0 while nobody watches it)."""
        with self._lock:
            entry = self._topics.get(topic)
            return entry.count if entry is not None else 0

    def watch(
        self, topic: str, *, probe: Probe | None = None, poll: float = 0.05, probed: object = None
    ) -> Watch:
        """A watch of ``topic``, counting from now. ``probe`` (with its value ``probed`` read just
        before this call) is polled every ``poll`` seconds while the watch waits."""
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                entry = self._topics[topic] = _Topic()
            entry.watchers += 1
            return Watch(self, topic, entry.count, probe, poll, probed)

    def _unwatch(self, topic: str) -> None:
        with self._lock:
            entry = self._topics.get(topic)
            if entry is not None:
                entry.watchers -= 1
                if entry.watchers <= 0 and not entry.wakers:
                    del self._topics[topic]

    async def wait_topic(self, topic: str, seen: int, timeout: float) -> int | None:
        """The topic's count once it differs from ``seen``, or ``None`` after ``timeout`` seconds."""
        waker = _Waker()
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                entry = self._topics[topic] = _Topic()
            if entry.count != seen or self._closed:
                waker.close()
                return entry.count
            entry.wakers.add(waker)
        try:
            woke = await waker.wait(timeout)
        finally:
            with self._lock:
                entry.wakers.discard(waker)
                if entry.watchers <= 0 and not entry.wakers and self._topics.get(topic) is entry:
                    del self._topics[topic]
            waker.close()
        return entry.count if woke else None

    def close(self) -> None:
        """Wake every waiter, now and later (they return as if something changed)."""
        with self._lock:
            self._closed = True
        self.touch_all()


class Watch:
    """One reader's watch of one topic of a store (see the module's docstring). One task waits on a
    watch at a time. Close it (or use ``async with``) when done; a closed watch's ``wait`` returns
    True at once, so a reader loop that re-checks its condition ends instead of hanging."""

    __slots__ = ("_closed", "_poll", "_probe", "_probed", "_seen", "_topics", "topic")

    def __init__(
        self, topics: Topics, topic: str, seen: int, probe: Probe | None, poll: float, probed: object
    ) -> None:
        self._topics = topics
        self.topic = topic
        self._seen = seen
        self._probe = probe
        self._poll = poll
        self._probed = probed
        self._closed = False

    @property
    def changed(self) -> bool:
        """Whether a counted change arrived that :meth:`wait` has not returned for yet."""
        return self._topics.count(self.topic) != self._seen

    async def wait(self, timeout: float) -> bool:
        """True as soon as the topic changed since the last ``wait`` returned True (or since the
        watch began); False after ``timeout`` seconds without a change."""
        if self._closed:
            return True
        if self._probe is None:
            return self._saw(await self._topics.wait_topic(self.topic, self._seen, timeout))
        deadline = anyio.current_time() + max(timeout, 0.0)
        while True:
            remaining = deadline - anyio.current_time()
            if self._saw(await self._topics.wait_topic(self.topic, self._seen, min(self._poll, remaining))):
                return True
            probed = await self._probe()
            if probed != self._probed:
                self._probed = probed
                return True
            if deadline - anyio.current_time() <= 0:
                return False

    def _saw(self, count: int | None) -> bool:
        if count is None:
            return False
        self._seen = count
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._topics._unwatch(self.topic)

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.close()
