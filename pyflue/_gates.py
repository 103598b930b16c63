"""FIFO turn-taking for one stored session, costing nothing while the session is idle.

Operations on one session run one at a time in arrival order, across every harness of the process:
two harnesses of one instance share the stored session's :class:`~pyflue.history.History`, and the
history owns the session's :class:`TurnGate`. Entering an idle gate does not wait, allocate or
checkpoint; only a busy gate queues its waiters (in arrival order).
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

import anyio

__all__ = ["TurnGate"]


class TurnGate:
    """A fair (FIFO) lock of one stored session, used as ``async with gate:``.

    Not an ``anyio.Lock``: its acquire checkpoints even when free, which costs an event-loop pass
    per operation. A turn handed to a waiter stays held, so nobody arriving later overtakes it.
    """

    __slots__ = ("_busy", "_waiters")

    def __init__(self) -> None:
        self._busy = False
        self._waiters: deque[anyio.Event] = deque()

    async def __aenter__(self) -> None:
        if not self._busy:
            self._busy = True
            return
        ticket = anyio.Event()
        self._waiters.append(ticket)
        try:
            await ticket.wait()
        except BaseException:
            if ticket.is_set():  # the turn was handed over as we were cancelled: pass it on
                self._release()
            else:
                self._waiters.remove(ticket)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # hand the turn to the next in line
        else:
            self._busy = False
