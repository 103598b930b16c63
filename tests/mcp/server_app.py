"""A real MCP server for the tests, written with the ``mcp`` SDK's server API (``MCPServer``, the
SDK 2.x name of FastMCP).

    python server_app.py                 serve over stdio
    python server_app.py --http PORT     serve streamable HTTP on 127.0.0.1:PORT (path /mcp)

``--require-header NAME=VALUE`` makes the HTTP server answer 401 to requests without that header.
``--exit-at-once`` prints a reason on stderr and exits before speaking MCP.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("calc")
calls = {"count": 0}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always fails with ``reason``."""
    from mcp.server.mcpserver.exceptions import ToolError

    raise ToolError(f"refused: {reason}")


@server.tool()
def pid() -> int:
    """The server's process id (tells a restarted server from the first one)."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exits the server process in the middle of the call."""
    sys.stderr.write("about to crash on purpose\n")
    sys.stderr.flush()
    os._exit(3)


def main(argv: list[str]) -> None:
    if "--exit-at-once" in argv:
        sys.stderr.write("cannot start: missing configuration\n")
        sys.exit(2)
    if "--http" in argv:
        port = int(argv[argv.index("--http") + 1])
        app = server.streamable_http_app()
        if "--require-header" in argv:
            name, value = argv[argv.index("--require-header") + 1].split("=", 1)
            app = _guarded(app, name.lower().encode(), value.encode())
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    else:
        server.run()


def _guarded(app, name: bytes, value: bytes):  # type: ignore[no-untyped-def]
    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and (name, value) not in scope.get("headers", []):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing header"})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    main(sys.argv[1:])
