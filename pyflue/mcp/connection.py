"""One MCP server connection: started once, shared by every caller, restarted after a failure.

The ``mcp`` SDK's transports and ``ClientSession`` are async context managers holding task groups,
so they must be entered and left by one task. A connection therefore lives in a background task
(started through the owner's ``spawn``) that opens the transport, runs the MCP handshake, publishes
the session and waits until it is told to close; callers in any task send requests through the
published session. A connection that fails (the server exits, the HTTP endpoint goes away) is
marked dead: the call that met the failure gets an error, the next call starts a new connection.

The SDK (extra ``mcp``) is imported when a connection starts, never when this module is imported.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import IO, TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread

from ..errors import ConfigError, ToolError, shown
from ..tools import Tool, define_tool
from .specs import MCPServerSpec, tool_name

if TYPE_CHECKING:
    from mcp import ClientSession

__all__ = ["MCPConnection", "MCPServerError", "Spawn"]

#: Starts a coroutine function as a background task that outlives the caller.
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], Awaitable[None]]

_STDERR_TAIL = 600
_STOP_WAIT = 10.0
_MAX_PAGES = 100
_INSTALL = "MCP servers need the 'mcp' extra: pip install 'pyflue[mcp]'"


class MCPServerError(ToolError):
    """An MCP server failed to start, did not answer the handshake in time, or dropped its
    connection. ``server`` names it. Inside the turn loop it goes back to the model as an error
    result, like any tool failure; the next call starts the server again."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "server": self.server}


class _Attempt:
    """One start of a server: its task's cancel scope, its session once ready, its outcome."""

    __slots__ = ("closing", "error", "ready", "scope", "session", "stderr", "stopped")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.ready = anyio.Event()
        self.closing = anyio.Event()
        self.stopped = anyio.Event()
        self.session: ClientSession | None = None
        self.error: BaseException | None = None
        self.stderr: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.session is not None and not self.closing.is_set() and not self.stopped.is_set()


class MCPConnection:
    """The connection to one server. :meth:`tools` lists the server's tools once (as PyFlue
    tools, shared by every agent using them); :meth:`call` calls one; :meth:`aclose` stops the
    server. ``spawn`` runs the connection's background task (an owner's task group)."""

    def __init__(self, spec: MCPServerSpec, spawn: Spawn) -> None:
        self.spec = spec
        self._spawn = spawn
        self._attempt: _Attempt | None = None
        self._lock: anyio.Lock | None = None
        self._tools: tuple[Tool, ...] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "connected" if self._attempt is not None and self._attempt.alive else "idle"
        return f"<MCPConnection {self.spec.name!r} {state}>"

    # -- calls ---------------------------------------------------------------------------------------

    async def tools(self) -> tuple[Tool, ...]:
        """The server's tools as PyFlue tools named ``mcp__<server>__<tool>``, listed on the first
        use (starting the server) and kept: ``MCPServerError`` when it cannot be started."""
        if self._tools is None:
            listing = await self._list()
            tools: dict[str, Tool] = {}
            for info in listing:
                tool = self._tool(info)
                if tool.name in tools:
                    raise MCPServerError(
                        f"MCP server {self.spec.name!r} has two tools named {tool.name!r} once made "
                        "valid tool names; rename one on the server",
                        server=self.spec.name,
                    )
                tools[tool.name] = tool
            self._tools = tuple(tools.values())
        return self._tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call ``tool`` with ``arguments``: the result's text (or structured content). An error
        the tool reports is a ``ToolError``; a lost connection an ``MCPServerError`` (and the next
        call reconnects)."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        attempt = await self._ready()
        assert attempt.session is not None
        try:
            result = await attempt.session.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise await self._lost(attempt, f"calling {tool!r}", exc) from None
            raise ToolError(f"MCP server {self.spec.name!r}, tool {tool!r}: {exc.message}") from None
        except Exception as exc:  # the transport failed (a dropped HTTP connection, a broken pipe)
            raise await self._lost(attempt, f"calling {tool!r}", exc) from None
        data: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if data.get("isError"):
            text = _content(data)
            raise ToolError(text if isinstance(text, str) and text else f"the tool {tool!r} failed")
        return _content(data)

    async def aclose(self) -> None:
        """Stop the server (bounded: a server that does not exit is killed). Idempotent."""
        self._closed = True
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            await _stop(attempt)

    # -- connection ----------------------------------------------------------------------------------

    async def _list(self) -> list[dict[str, Any]]:
        from mcp_types import PaginatedRequestParams

        attempt = await self._ready()
        assert attempt.session is not None
        listing: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await attempt.session.list_tools(params=params)
                data = page.model_dump(mode="json", by_alias=True, exclude_none=True)
                listing.extend(data.get("tools", ()))
                cursor = data.get("nextCursor")
                if not cursor:
                    break
        except Exception as exc:
            raise await self._lost(attempt, "listing its tools", exc) from None
        return listing

    def _tool(self, info: dict[str, Any]) -> Tool:
        original = str(info.get("name", ""))
        schema = info.get("inputSchema") or {"type": "object", "properties": {}}
        description = info.get("description") or info.get("title") or original

        async def execute(**arguments: Any) -> Any:
            return await self.call(original, arguments)

        return define_tool(
            tool_name(self.spec.name, original), execute, description=description, parameters=schema
        )

    async def _ready(self) -> _Attempt:
        """The live connection, started (or restarted) now if there is none."""
        if self._closed:
            raise ConfigError(f"the MCP connection to {self.spec.name!r} is closed")
        require_sdk()
        attempt = self._attempt
        if attempt is not None and attempt.alive:
            return attempt
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            attempt = self._attempt
            if attempt is not None and attempt.alive:
                return attempt
            if attempt is not None:
                await _stop(attempt)
            attempt = _Attempt()
            await self._spawn(functools.partial(self._run, attempt))
            self._attempt = attempt
            with anyio.move_on_after(self.spec.timeout):
                await attempt.ready.wait()
            if not attempt.ready.is_set():
                await _stop(attempt)
                raise await self._failed(attempt, f"did not start within {self.spec.timeout:g}s")
            if attempt.session is None:
                error = attempt.error
                raise await self._failed(attempt, f"failed to start: {_describe(error)}")
            return attempt

    async def _run(self, attempt: _Attempt) -> None:
        """The connection's background task (see the module docstring)."""
        from mcp import ClientSession

        try:
            with attempt.scope:
                try:
                    async with AsyncExitStack() as stack:
                        read, write = await stack.enter_async_context(self._transport(attempt))
                        session = await stack.enter_async_context(ClientSession(read, write))
                        await session.initialize()
                        attempt.session = session
                        attempt.ready.set()
                        await attempt.closing.wait()
                except Exception as exc:
                    attempt.error = exc
        finally:
            attempt.session = None
            attempt.ready.set()
            attempt.stopped.set()

    @asynccontextmanager
    async def _transport(self, attempt: _Attempt) -> AsyncIterator[tuple[Any, Any]]:
        spec = self.spec
        if spec.url is not None:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = httpx2.AsyncClient(headers=dict(spec.headers), timeout=httpx2.Timeout(30.0, read=300.0))
            async with client, streamable_http_client(spec.url, http_client=client) as streams:
                yield streams[0], streams[1]
            return
        from mcp import StdioServerParameters, stdio_client

        # The server's stderr goes to an anonymous file, so a failure can quote its last lines.
        attempt.stderr = await anyio.to_thread.run_sync(tempfile.TemporaryFile)
        params = StdioServerParameters(
            command=spec.command[0], args=list(spec.command[1:]), env=dict(spec.env) or None, cwd=spec.cwd
        )
        async with stdio_client(params, errlog=cast(Any, attempt.stderr)) as streams:
            yield streams[0], streams[1]

    async def _lost(self, attempt: _Attempt, doing: str, exc: BaseException) -> MCPServerError:
        """The error for a connection that failed while ``doing``; the connection is stopped, so
        the next call starts the server again."""
        await _stop(attempt)
        return await self._failed(
            attempt, f"dropped the connection while {doing} ({_describe(exc)}); the next call reconnects"
        )

    async def _failed(self, attempt: _Attempt, what: str) -> MCPServerError:
        tail = await _stderr_tail(attempt)
        message = f"MCP server {self.spec.name!r} ({shown(self.spec.target, 120)}) {what}"
        if tail:
            message += f"; its stderr ends with: {tail}"
        return MCPServerError(message, server=self.spec.name)


async def _stop(attempt: _Attempt) -> None:
    """Tell the attempt's task to close, and wait for it (cancelling it when it does not stop)."""
    attempt.closing.set()
    if attempt.session is None:  # still starting (or never started): nothing waits for `closing`
        attempt.scope.cancel()
    with anyio.move_on_after(_STOP_WAIT, shield=True):
        await attempt.stopped.wait()
    if not attempt.stopped.is_set():
        attempt.scope.cancel()


async def _stderr_tail(attempt: _Attempt) -> str:
    file = attempt.stderr
    if file is None:
        return ""

    def read() -> str:
        try:
            size = os.fstat(file.fileno()).st_size
            file.seek(max(0, size - _STDERR_TAIL))
            return " ".join(file.read().decode("utf-8", "replace").split())
        except (OSError, ValueError):
            return ""

    return await anyio.to_thread.run_sync(read)


def _describe(exc: BaseException | None) -> str:
    """The innermost cause of ``exc`` (task groups wrap failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "the connection closed during the handshake"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _content(data: dict[str, Any]) -> Any:
    """A tool result as the model reads it: the text blocks joined; other blocks described (an
    image's bytes are not text); with no content blocks, the structured content."""
    blocks = data.get("content") or []
    if not blocks and "structuredContent" in data:
        return data["structuredContent"]
    parts: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in ("image", "audio"):
            size = len(block.get("data", ""))
            parts.append(f"[{kind} {block.get('mimeType', '')}: {size} base64 characters]")
        elif kind == "resource":
            resource = block.get("resource", {})
            parts.append(resource.get("text") or f"[resource {resource.get('uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.get('uri', '')}]")
        else:
            parts.append(json.dumps(block))
    return "\n".join(parts)


def require_sdk() -> None:
    """``ConfigError`` saying how to install the SDK when it is missing."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(_INSTALL) from None
