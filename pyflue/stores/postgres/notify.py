"""Change notification over ``LISTEN``/``NOTIFY``: one listening connection per database object, and
watches that wake async waiters on any event loop (asyncio or trio) without polling the tables.

Writers call ``pg_notify(channel, topic)`` in the transaction that changes something; PostgreSQL
delivers the notification when (and only if) that transaction commits. A :class:`Notifier` owns one
connection that ``LISTEN`` s on the channel, in a thread of its own, and counts the notifications of
each topic someone watches. A :class:`Watch` is one reader's interest in one topic: ``wait`` returns as
soon as the topic's count moved past what the watch last saw, so a notification that arrived while its
reader was reading is never lost. Waiters are woken through a socket pair each (the listener thread
writes a byte, the waiter's loop sees the socket readable), which works the same on every loop.

When the listening connection breaks, the notifier reconnects with backoff and then counts a change on
every topic: whatever was missed meanwhile, every reader reads again.
"""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Callable

import anyio
import anyio.to_thread
import psycopg
from psycopg import sql

from ...errors import StoreError

__all__ = ["Notifier", "Watch"]

#: How often the listening thread checks whether it should stop, in seconds.
_TICK = 0.2
#: How long a first watcher waits for the listening connection, in seconds.
_CONNECT_TIMEOUT = 30.0


class _Waker:
    """One waiting call: a socket pair the listener thread writes to."""

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


class Notifier:
    """Listens on ``channel`` with connections made by ``connect`` (autocommit) and counts the
    notifications of watched topics. Starts listening with the first :meth:`watch`; :meth:`close`
    stops the thread (within :data:`_TICK` seconds) and wakes every waiter."""

    def __init__(self, connect: Callable[[], psycopg.Connection[tuple[object, ...]]], channel: str) -> None:
        self._connect = connect
        self.channel = channel
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None

    # -- the listening thread ----------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.05
        first = True
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._error = None
                    self._listening.set()
                    if not first:
                        self._touch_all()  # anything may have happened while we were not listening
                    first, delay = False, 0.05
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_TICK):
                            self._deliver(note.payload)
            except psycopg.Error as exc:
                self._error = exc
                self._listening.set()  # a first watcher stops waiting and reports the error
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
                self._listening.clear()

    def _deliver(self, topic: str) -> None:
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                return
            entry.count += 1
            wakers = list(entry.wakers)
        for waker in wakers:
            waker.poke()

    def _touch_all(self) -> None:
        with self._lock:
            wakers = [w for entry in self._topics.values() for w in entry.wakers]
            for entry in self._topics.values():
                entry.count += 1
        for waker in wakers:
            waker.poke()

    def _start(self) -> None:
        """Start the listening thread if needed and wait until it listens (worker thread)."""
        with self._lock:
            if self._stop.is_set():
                raise StoreError("this PostgreSQL database object is closed; open a new one")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"pyflue-listen-{self.channel}")
                self._thread.daemon = True
                self._thread.start()
        if not self._listening.wait(_CONNECT_TIMEOUT):
            raise StoreError(f"could not LISTEN for changes within {_CONNECT_TIMEOUT:g} s; is the server up?")
        error = self._error
        if error is not None:
            raise StoreError(f"could not LISTEN for changes: {str(error).strip()[:300]}")

    # -- watching ----------------------------------------------------------------------------------

    async def watch(self, topic: str) -> Watch:
        """A watch of ``topic``, counting from now; the listener listens when this returns."""
        await anyio.to_thread.run_sync(self._start)
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                entry = self._topics[topic] = _Topic()
            entry.watchers += 1
            return Watch(self, topic, entry.count)

    def count(self, topic: str) -> int:
        with self._lock:
            entry = self._topics.get(topic)
            return entry.count if entry is not None else 0

    def _unwatch(self, topic: str) -> None:
        with self._lock:
            entry = self._topics.get(topic)
            if entry is not None:
                entry.watchers -= 1
                if entry.watchers <= 0 and not entry.wakers:
                    del self._topics[topic]

    async def wait_topic(self, topic: str, seen: int, timeout: float) -> int | None:
        """The topic's count once it differs from ``seen``, or ``None`` after ``timeout``."""
        waker = _Waker()
        with self._lock:
            entry = self._topics.get(topic)
            if entry is None:
                entry = self._topics[topic] = _Topic()
            if entry.count != seen or self._stop.is_set():
                waker.close()
                return entry.count
            entry.wakers.add(waker)
        try:
            woke = await waker.wait(timeout)
        finally:
            with self._lock:
                entry.wakers.discard(waker)
            waker.close()
        return self.count(topic) if woke else None

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and wake every waiter (they return as if something changed)."""
        self._stop.set()
        self._touch_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_TICK * 10)


class Watch:
    """One reader's watch of one topic. Call :meth:`wait` between reads: it returns True as soon as
    the topic changed since the previous ``wait`` returned (or since the watch began), False after
    ``timeout`` seconds without a change. Close it (or use ``async with``) when done."""

    __slots__ = ("_closed", "_notifier", "_seen", "topic")

    def __init__(self, notifier: Notifier, topic: str, seen: int) -> None:
        self._notifier = notifier
        self.topic = topic
        self._seen = seen
        self._closed = False

    @property
    def changed(self) -> bool:
        """Whether a change arrived that :meth:`wait` has not returned for yet."""
        return self._notifier.count(self.topic) != self._seen

    async def wait(self, timeout: float) -> bool:
        count = await self._notifier.wait_topic(self.topic, self._seen, timeout)
        if count is None:
            return False
        self._seen = count
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._notifier._unwatch(self.topic)

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.close()
