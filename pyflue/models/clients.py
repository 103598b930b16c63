"""The HTTP clients providers talk through, with an owner and a lifetime.

A :class:`ClientPool` owns one pooled :class:`httpx.AsyncClient` per provider key (``"anthropic"``,
``"openai"``, ``"ollama"``, ...), created on first use and closed by :meth:`ClientPool.aclose`. Code that
owns resources opens a pool and activates it with :func:`use_pool`; every provider call made inside (and
in the tasks started inside) goes through that pool's clients::

    async with ClientPool() as pool:
        with use_pool(pool):
            await session.prompt("...")

A pool belongs to one event loop: its connections are bound to the loop that opened them, so a pool
must be used and closed on the loop it was first used on (one pool per loop, e.g. per server worker).

Code that opened no pool (a plain script) still works: :func:`current_pool` then returns an implicit
pool for the running event loop, created on first use and kept for that loop's lifetime (it is never
closed explicitly; its connections go when the loop ends). Servers and workers should own a pool instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

import httpx
from anyio.lowlevel import RunVar

from ..errors import ConfigError

__all__ = ["ClientPool", "current_pool", "use_pool"]

# Per-operation limits come from each request (see HTTPProvider); these are the client's defaults for
# anything sent without them, and the connection-pool size shared by every call to one provider.
_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=40)


class ClientPool:
    """One pooled :class:`httpx.AsyncClient` per provider key, closed together by :meth:`aclose`.

    Use it from one event loop. After :meth:`aclose`, :meth:`client` raises :class:`ConfigError`.
    """

    __slots__ = ("_clients", "_closed")

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def client(self, key: str) -> httpx.AsyncClient:
        """The client for ``key``, created on first use."""
        if self._closed:
            raise ConfigError(
                "this ClientPool is closed; a provider call ran after its owner (a Runtime, or "
                "`async with ClientPool()`) closed it: make the call inside the owner's lifetime"
            )
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = httpx.AsyncClient(timeout=_TIMEOUT, limits=_LIMITS)
        return client

    def __len__(self) -> int:
        """How many clients are open (one per provider key used so far)."""
        return len(self._clients)

    async def aclose(self) -> None:
        """Close every client (their connections too). Idempotent."""
        self._closed = True
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._clients)} client(s)"
        return f"ClientPool({state})"


_active: ContextVar[ClientPool | None] = ContextVar("pyflue_client_pool", default=None)
_fallback: RunVar[ClientPool] = RunVar("pyflue_fallback_client_pool")


@contextmanager
def use_pool(pool: ClientPool) -> Iterator[ClientPool]:
    """Make ``pool`` the one providers use in this block and in the tasks started inside it (tasks copy
    the context they start in). Blocks nest: the innermost pool wins, the outer one is back after."""
    token = _active.set(pool)
    try:
        yield pool
    finally:
        _active.reset(token)


def current_pool() -> ClientPool:
    """The pool activated by :func:`use_pool`, or else the implicit pool of the running event loop."""
    pool = _active.get()
    if pool is not None:
        return pool
    try:
        pool = _fallback.get()
    except LookupError:
        pool = None
    if pool is None or pool.closed:
        pool = ClientPool()
        _fallback.set(pool)
    return pool
