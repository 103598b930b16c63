"""FIFO turn-taking per stored session, costing nothing while a session is idle.

Operations on one session run one at a time in arrival order, across every harness of the process
(two harnesses of one instance share the stored history, so they share the turn). A gate exists only
while someone holds or waits for it, and gates live per event loop (an anyio ``RunVar``), so asyncio
and trio never share one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

import anyio
from anyio.lowlevel import RunVar

__all__ = ["session_turn"]

_gates: RunVar[dict[Hashable, deque[anyio.Event]]] = RunVar("pyflue_session_gates")


def _all() -> dict[Hashable, deque[anyio.Event]]:
    try:
        return _gates.get()
    except LookupError:
        gates: dict[Hashable, deque[anyio.Event]] = {}
        _gates.set(gates)
        return gates


def _release(gates: dict[Hashable, deque[anyio.Event]], key: Hashable, waiters: deque[anyio.Event]) -> None:
    if waiters:
        waiters.popleft().set()  # hand the turn to the next in line
    else:
        del gates[key]


@asynccontextmanager
async def session_turn(key: Hashable) -> AsyncIterator[None]:
    """Hold ``key``'s turn for the body; waiters get it in arrival order."""
    gates = _all()
    waiters = gates.get(key)
    if waiters is None:
        waiters = gates[key] = deque()
    else:
        ticket = anyio.Event()
        waiters.append(ticket)
        try:
            await ticket.wait()
        except BaseException:
            if ticket.is_set():  # the turn was handed over as we were cancelled: pass it on
                _release(gates, key, waiters)
            else:
                waiters.remove(ticket)
            raise
    try:
        yield
    finally:
        _release(gates, key, waiters)
