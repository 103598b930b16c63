"""Change notification over ``LISTEN``/``NOTIFY``: one listening connection per database object, counting
the notifications of the topics someone watches (:class:`~pyflue.stores.changes.Topics`), so watches
wake async waiters on any event loop (asyncio or trio) without polling the tables.

Writers call ``pg_notify(channel, topic)`` in the transaction that changes something; PostgreSQL
delivers the notification when (and only if) that transaction commits. A :class:`Notifier` owns one
connection that ``LISTEN`` s on the channel, in a thread of its own, and touches the notified topic. A
:class:`~pyflue.stores.changes.Watch` is one reader's interest in one topic: ``wait`` returns as soon as
the topic's count moved past what the watch last saw, so a notification that arrived while its reader was
reading is never lost.

When the listening connection breaks, the notifier reconnects with backoff and then counts a change on
every topic: whatever was missed meanwhile, every reader reads again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio.to_thread
import psycopg
from psycopg import sql

from ...errors import StoreError
from ..changes import Topics, Watch

__all__ = ["Notifier", "Watch"]

#: How often the listening thread checks whether it should stop, in seconds.
_TICK = 0.2
#: How long a first watcher waits for the listening connection, in seconds.
_CONNECT_TIMEOUT = 30.0


class Notifier:
    """Listens on ``channel`` with connections made by ``connect`` (autocommit) and counts the
    notifications of watched topics in :attr:`topics`. Starts listening with the first :meth:`watch`
    (or :meth:`start`); :meth:`close` stops the thread (within :data:`_TICK` seconds) and wakes every
    waiter."""

    def __init__(self, connect: Callable[[], psycopg.Connection[tuple[object, ...]]], channel: str) -> None:
        self._connect = connect
        self.channel = channel
        self.topics = Topics()
        self._lock = threading.Lock()
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
                        self.topics.touch_all()  # anything may have happened while we were not listening
                    first, delay = False, 0.05
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_TICK):
                            self.topics.touch(note.payload)
            except psycopg.Error as exc:
                self._error = exc
                self._listening.set()  # a first watcher stops waiting and reports the error
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
                self._listening.clear()

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

    async def start(self) -> None:
        """Listen from now on (returns once the listening connection listens)."""
        await anyio.to_thread.run_sync(self._start)

    async def watch(self, topic: str) -> Watch:
        """A watch of ``topic``, counting from now; the listener listens when this returns."""
        await self.start()
        return self.topics.watch(topic)

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and wake every waiter (they return as if something changed)."""
        self._stop.set()
        self.topics.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_TICK * 10)
