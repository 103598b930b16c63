"""Ctrl-C that cancels cleanly.

The default SIGINT handling raises ``KeyboardInterrupt`` wherever the program happens to be, which
can leave a run ``running`` in the store with half its events written. Instead, while a command
awaits the core, SIGINT (and SIGTERM) ask the core to cancel what is running: ``request(reason)``
when the command has a better way than cancelling its scope (``cancel_run`` records *why*), else
the scope is cancelled and the core sees an ordinary cancellation. Either way the run ends
``cancelled`` with its events so far, and the command exits 128 + the signal's number (130 for
Ctrl-C). A second signal while the first is being honoured exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from .exits import print_error

__all__ = ["Interrupts", "cancel_on_signals"]

_REASONS = {signal.SIGINT: "interrupted by Ctrl-C (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}


class Interrupts:
    """What :func:`cancel_on_signals` saw: the first signal's number, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def __bool__(self) -> bool:
        return self.signum is not None


@asynccontextmanager
async def cancel_on_signals(
    scope: anyio.CancelScope, request: Callable[[str], Awaitable[bool]] | None = None
) -> AsyncIterator[Interrupts]:
    """While the block runs, the first SIGINT/SIGTERM cancels (``request``, else ``scope``); a
    second one exits the process."""
    seen = Interrupts()
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                ready.set()
                async for signum in signals:
                    if seen.signum is not None:
                        print_error("interrupted again; exiting now")
                        sys.stderr.flush()
                        os._exit(128 + int(signum))
                    seen.signum = int(signum)
                    if request is None or not await _try(request, _REASONS.get(signum, f"signal {signum}")):
                        scope.cancel()

        tg.start_soon(watch)
        await ready.wait()
        try:
            yield seen
        finally:
            tg.cancel_scope.cancel()


async def _try(request: Callable[[str], Awaitable[bool]], reason: str) -> bool:
    try:
        return await request(reason)
    except Exception:  # not cancellable that way (e.g. not recorded yet): cancel the scope instead
        return False
