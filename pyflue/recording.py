"""Writing an event stream to a store in batches, off the emitter's path.

A run's log and a dispatched input's log are both written this way: the recorder is a sync
observer (so it costs the emitter a list append), adds up usage from ``model_end`` events, and a
flusher task writes what accumulated every ``FLUSH_INTERVAL`` seconds or every ``FLUSH_EVENTS``
events. A write that fails is retried at the next flush, in order; what is left at the end is
taken by the owner and written together with its final record.

:meth:`EventRecorder.commit` hands what is pending to another write instead (a resumable run's
journal step, stored with the events before it in one transaction). Writes of one recorder never
overlap, so a log is always written in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio

from .events import Event
from .models.base import Usage

__all__ = ["FLUSH_EVENTS", "FLUSH_INTERVAL", "EventRecorder"]

_log = logging.getLogger("pyflue.recording")

#: Events buffered before the flusher writes without waiting for its interval.
FLUSH_EVENTS = 512
#: Seconds between the flusher's writes while events trickle in.
FLUSH_INTERVAL = 0.05


class EventRecorder:
    """Buffers the events of one log and writes them with ``write(batch)`` from :meth:`run`."""

    __slots__ = ("_buffer", "_lock", "_wake", "_write", "closed", "label", "usage")

    def __init__(self, write: Callable[[Sequence[Event]], Awaitable[None]], label: str) -> None:
        self._write = write
        self.label = label
        self._buffer: list[Event] = []
        self.usage = Usage()
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self.closed = False

    def __call__(self, event: Event) -> None:
        if self.closed:
            return  # an instance used after its log ended: not part of it any more
        self._buffer.append(event)
        if event.type == "model_end":
            spent = event.data.get("usage")
            if spent:
                self.usage = self.usage + Usage(**spent)
        if len(self._buffer) >= FLUSH_EVENTS:
            self._wake.set()

    async def flush(self) -> None:
        if not self._buffer:
            return
        async with self._lock:
            batch, self._buffer = self._buffer, []
            try:
                await self._write(batch)
            except Exception:
                self._buffer[:0] = batch  # keep order; retried at the next flush
                _log.warning("%s: could not write %d events; retrying", self.label, len(batch), exc_info=True)
                failed = True
            else:
                failed = False
        if failed:
            await anyio.sleep(FLUSH_INTERVAL * 10)

    async def commit(self, write: Callable[[Sequence[Event]], Awaitable[None]]) -> None:
        """Store the pending events with ``write(batch)`` instead of the recorder's own write (a
        write that stores them together with something else, atomically). If it fails, the events
        stay pending, in order, and the error propagates."""
        async with self._lock:
            batch, self._buffer = self._buffer, []
            try:
                await write(batch)
            except BaseException:
                self._buffer[:0] = batch
                raise

    async def run(self) -> None:
        """Flush until cancelled."""
        while True:
            with anyio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.flush()

    def take(self) -> list[Event]:
        """Close the recorder and hand over what it has not written."""
        self.closed = True
        batch, self._buffer = self._buffer, []
        return batch
