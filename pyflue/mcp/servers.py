"""The owner of a process's MCP connections, and the listing ``pyflue mcp list`` shows.

One :class:`MCPServers` holds one connection per distinct server spec, so every agent instance that
names the same server shares its process (or HTTP session) and its tool objects. Connections start
on first use and stop on :meth:`MCPServers.aclose`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..errors import ConfigError
from ..tools import Tool
from .connection import MCPConnection, MCPServerError, Spawn
from .specs import MCPServerSpec, parse_server_specs

__all__ = ["MCPServers", "ServerListing", "list_mcp_tools"]


class MCPServers:
    """MCP connections with one lifetime.

    ``async with MCPServers(specs) as servers: tools = await servers.tools()`` runs the connections
    in the context's own task group. An owner that already has a task group for background work (the
    runtime) passes ``spawn=runtime.start_soon`` instead and calls :meth:`aclose` when it closes.
    ``specs`` are the default servers of :meth:`tools`; any other spec is connected on demand.
    """

    def __init__(self, specs: Iterable[Any] = (), *, spawn: Spawn | None = None) -> None:
        self.specs = parse_server_specs(specs)
        self._spawn_with = spawn
        self._connections: dict[MCPServerSpec, MCPConnection] = {}
        self._group: TaskGroup | None = None
        self._closed = False

    def connection(self, spec: MCPServerSpec | dict[str, Any]) -> MCPConnection:
        """The one connection of ``spec`` (made on first request; the server starts on first use)."""
        if self._closed:
            raise ConfigError("these MCPServers are closed; open new ones")
        key = parse_server_specs([spec])[0]
        found = self._connections.get(key)
        if found is None:
            found = self._connections[key] = MCPConnection(key, self._spawn)
        return found

    async def tools(self, specs: Iterable[Any] | None = None) -> list[Tool]:
        """The tools of ``specs`` (default: this object's), servers started concurrently; the
        first server that cannot start raises its ``MCPServerError`` (naming it)."""
        chosen = self.specs if specs is None else parse_server_specs(specs)
        listings = await _gather([self.connection(spec) for spec in chosen])
        tools: list[Tool] = []
        for listing in listings:
            if listing.error is not None:
                raise listing.error
            tools.extend(listing.tools)
        return tools

    async def listings(self, specs: Iterable[Any] | None = None) -> list[ServerListing]:
        """What each server offers, or why it failed, one :class:`ServerListing` per server."""
        chosen = self.specs if specs is None else parse_server_specs(specs)
        return await _gather([self.connection(spec) for spec in chosen])

    async def _spawn(self, function: Any) -> None:
        if self._spawn_with is not None:
            await self._spawn_with(function)
        elif self._group is not None:
            self._group.start_soon(function)
        else:
            raise ConfigError(
                "MCPServers runs its connections in a task group: use `async with MCPServers(...)` "
                "or pass spawn= (e.g. a runtime's start_soon)"
            )

    async def aclose(self) -> None:
        """Stop every server (each bounded; idempotent)."""
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for connection in connections:
                    group.start_soon(connection.aclose)

    async def __aenter__(self) -> MCPServers:
        if self._group is not None or self._closed:
            raise ConfigError("open an MCPServers once")
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self.aclose()
        finally:
            group, self._group = self._group, None
            if group is not None:
                group.cancel_scope.cancel()
                await group.__aexit__(exc_type, exc, tb)
        return None

    def __repr__(self) -> str:
        return f"<MCPServers {[s.name for s in self.specs]}, {len(self._connections)} connection(s)>"


@dataclass(frozen=True, slots=True)
class ServerListing:
    """One server's tools, or the error that kept it from listing them."""

    server: str
    tools: tuple[Tool, ...] = ()
    error: MCPServerError | None = None


async def list_mcp_tools(specs: Iterable[Any]) -> list[ServerListing]:
    """Start each server of ``specs``, list its tools and stop it: what ``pyflue mcp list`` shows.
    One server failing never hides the others (its listing carries the error)."""
    async with MCPServers(specs) as servers:
        return await servers.listings()


async def _gather(connections: list[MCPConnection]) -> list[ServerListing]:
    """Every connection's listing, concurrently. An error other than a server's own (no way to
    run connections, the SDK missing) is raised as itself, not inside an exception group."""
    results: list[ServerListing | Exception | None] = [None] * len(connections)

    async def one(index: int, connection: MCPConnection) -> None:
        try:
            results[index] = ServerListing(connection.spec.name, await connection.tools())
        except MCPServerError as exc:
            results[index] = ServerListing(connection.spec.name, (), exc)
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as group:
        for index, connection in enumerate(connections):
            group.start_soon(one, index, connection)
    listings: list[ServerListing] = []
    for result in results:
        if isinstance(result, Exception):
            raise result
        assert result is not None
        listings.append(result)
    return listings
