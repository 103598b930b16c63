"""A real HTTP server on 127.0.0.1 whose answers a test scripts: the stand-in for provider APIs.

It runs uvicorn in a background thread (its own event loop), so the code under test talks to it
over real sockets with real HTTP/1.1 framing, chunked SSE streams and abrupt disconnects.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    chunks: list[bytes] | None = None  # streamed as separate writes when set
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay: float = 0.0
    cut: bool = False  # drop the connection after the chunks (no clean end of body)
    delay: float = 0.0  # wait before answering (timeouts)
    # After the chunks, send ``trickle`` every ``trickle_every`` seconds until the client leaves (at most
    # ``trickle_for`` seconds): SSE comments or pings that keep a stream open without progress.
    trickle: bytes = b""
    trickle_every: float = 0.05
    trickle_for: float = 20.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WireServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    # -- scripting ---------------------------------------------------------------------------------

    def reply(self, reply: Reply) -> None:
        self.replies.append(reply)

    def json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.reply(
            Reply(
                status,
                json.dumps(payload).encode(),
                headers={"content-type": "application/json", **(headers or {})},
            )
        )

    def sse(
        self,
        events: list[tuple[str | None, Any]],
        *,
        split: int | None = None,
        cut: bool = False,
        headers: dict[str, str] | None = None,
        raw_tail: bytes = b"",
    ) -> None:
        """Stream ``(event name or None, data)`` pairs; ``split`` cuts the bytes into chunks of that size."""
        text = b"".join(sse_event(name, data) for name, data in events) + raw_tail
        chunks = [text[i : i + split] for i in range(0, len(text), split)] if split else [text]
        self.reply(
            Reply(
                200, chunks=chunks, cut=cut, headers={"content-type": "text/event-stream", **(headers or {})}
            )
        )

    def trickle(
        self,
        events: list[tuple[str | None, Any]],
        keepalive: bytes = b": keep-alive\n\n",
        *,
        every: float = 0.05,
        chunk_delay: float = 0.0,
    ) -> None:
        """Stream ``events`` (one write each, ``chunk_delay`` apart), then only ``keepalive`` every
        ``every`` seconds, never finishing: a server that holds a stream open without progress."""
        self.reply(
            Reply(
                200,
                chunks=[sse_event(name, data) for name, data in events],
                chunk_delay=chunk_delay,
                headers={"content-type": "text/event-stream"},
                trickle=keepalive,
                trickle_every=every,
            )
        )

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()

    # -- the ASGI app ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        self.requests.append(
            Seen(request.method, request.url.path, dict(request.headers), await request.body())
        )
        if not self.replies:
            return Response(b'{"error": "no reply scripted"}', 599)
        reply = self.replies.popleft()
        if reply.delay:
            import anyio

            await anyio.sleep(reply.delay)
        if reply.chunks is None:
            return Response(reply.body, reply.status, headers=reply.headers)

        async def body() -> AsyncIterator[bytes]:
            import anyio

            for chunk in reply.chunks or []:
                yield chunk
                if reply.chunk_delay:
                    await anyio.sleep(reply.chunk_delay)
            until = time.monotonic() + reply.trickle_for
            while reply.trickle and time.monotonic() < until:
                yield reply.trickle
                await anyio.sleep(reply.trickle_every)
            if reply.cut:
                raise ConnectionAbortedError("scripted disconnect")

        return StreamingResponse(body(), reply.status, headers=reply.headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])


def sse_event(name: str | None, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {name}\n" if name else ""
    return (head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n").encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _wire_server() -> Iterator[WireServer]:
    wire = WireServer()
    config = uvicorn.Config(
        wire.app(), host="127.0.0.1", port=wire.port, log_level="critical", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("wire server did not start")
        time.sleep(0.01)
    yield wire
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def wire(_wire_server: WireServer) -> Iterator[WireServer]:
    """The shared wire server, emptied for each test."""
    _wire_server.reset()
    yield _wire_server
    _wire_server.reset()
