"""One accepted socket: its requests in flight, its bounded send buffer, and how it ends.

Everything a socket runs lives in one task group of its own: the writer, which drains the send
buffer onto the socket, and one task per request. The reading loop runs in the handler's task.
Requests never wait for the client: they put their messages into a buffer of ``send_buffer``
messages without blocking, and a client so slow that the buffer fills is closed with 1013 (its
work stays in the stores: a run at ``/runs/{id}``, a conversation in the session store). A frame
over ``max_message`` bytes closes the socket with 1009.

When the client leaves (or is closed), each request is told so (:meth:`Request.leave`): prompts are
aborted unless ``abort_on_disconnect`` is off, in which case they run to their end, their messages
dropped; workflow runs always go on, only following them stops. The task group then waits for
what still runs, so nothing a socket started outlives the handler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from ..errors import error_body
from .protocol import (
    AbortMessage,
    ClientMessage,
    PingMessage,
    ProtocolError,
    Target,
    encode,
    error_message,
    parse,
)

__all__ = ["Connection", "Request", "WebSocketOptions"]

#: Close codes: the message was too big; the client fell too far behind (try again later).
TOO_BIG = 1009
TOO_SLOW = 1013


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """The WebSocket endpoints' tunables (``create_app(websocket=...)``).

    ``abort_on_disconnect``: a client that leaves aborts its prompts (workflow runs always go on).
    ``send_buffer``: messages a socket may have waiting to be sent before its client counts as too
    slow and is closed with 1013. ``max_message``: the largest frame a client may send, in bytes
    (1009 above it).
    """

    abort_on_disconnect: bool = True
    send_buffer: int = 1_024
    max_message: int = 1 << 20

    def __post_init__(self) -> None:
        if self.send_buffer < 1 or self.max_message < 1:
            raise ValueError("send_buffer and max_message must be positive")


class Request(ABC):
    """A request in flight on a socket (a prompt or a run), told apart by ``request_id``."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        #: Cancels what the request is doing on this socket (not a run it started).
        self.scope = anyio.CancelScope()

    @abstractmethod
    async def run(self, connection: Connection) -> None:
        """Do the request, sending ``started``, its events and its ``result``; an exception it
        raises becomes the request's ``error``."""

    async def abort(self, reason: str) -> None:
        """The client's ``abort``."""
        self.scope.cancel()

    async def leave(self, abort_prompts: bool) -> None:
        """The client has gone: stop, or let the work go on unseen."""
        self.scope.cancel()


class Connection:
    """An accepted socket to a ``target``; :meth:`serve` reads it until the client leaves."""

    def __init__(self, websocket: WebSocket, target: Target, options: WebSocketOptions, debug: bool) -> None:
        self.websocket = websocket
        self.target = target
        self.options = options
        self.debug = debug
        self._requests: dict[str, Request] = {}
        self._outbox: MemoryObjectSendStream[str]
        self._inbox: MemoryObjectReceiveStream[str]
        self._outbox, self._inbox = anyio.create_memory_object_stream[str](options.send_buffer)
        self._open = True  # messages are still being sent
        self._client_gone = False
        self._close_code: int | None = None
        self._close_reason = ""
        self._reading = anyio.CancelScope()

    # -- sending -----------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` without waiting; a full buffer closes the socket with 1013."""
        if not self._open:
            return
        try:
            self._outbox.send_nowait(encode(message))
        except anyio.WouldBlock:
            self._close(TOO_SLOW, "too far behind; read what was missed from the stores")

    def send_error(self, exc: BaseException, request_id: str | None = None) -> None:
        """The ``error`` message for ``exc``: a core error's type and message, an internal error's
        text only with ``debug``."""
        self.send(error_message(error_body(exc, debug=self.debug)["error"], request_id))

    # -- the socket's life -------------------------------------------------------------------------

    async def serve(self, request_for: Callable[[ClientMessage], Request]) -> None:
        """Read and answer frames until the client leaves or the socket is closed; ``request_for``
        makes the request a ``prompt`` or ``invoke`` message asks for."""
        async with anyio.create_task_group() as group:
            writer = anyio.CancelScope()
            written = anyio.Event()
            group.start_soon(self._write, writer, written)
            with self._reading:
                await self._read(group, request_for)
            self._open = False
            for request in list(self._requests.values()):
                group.start_soon(request.leave, self.options.abort_on_disconnect)
            writer.cancel()
            await written.wait()
            if self._close_code is not None and not self._client_gone:
                try:
                    await self.websocket.close(self._close_code, self._close_reason)
                except (WebSocketDisconnect, WebSocketDisconnected, OSError):
                    pass  # the client left meanwhile

    def _close(self, code: int, reason: str) -> None:
        if self._close_code is None:
            self._close_code, self._close_reason = code, reason
        self._open = False
        self._reading.cancel()

    async def _read(self, group: TaskGroup, request_for: Callable[[ClientMessage], Request]) -> None:
        limit = self.options.max_message
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self._client_gone = True
                return
            frame: str | bytes | None = message.get("text")
            if frame is None:
                frame = message.get("bytes")
            if frame is None:
                continue
            if len(frame) > limit or (isinstance(frame, str) and len(frame.encode()) > limit):
                self._close(TOO_BIG, f"a message is at most {limit} bytes")
                return
            try:
                parsed = parse(frame, self.target)
            except ProtocolError as exc:
                self.send(error_message(exc.error, exc.request_id))
                continue
            self._dispatch(group, parsed, request_for)

    def _dispatch(
        self, group: TaskGroup, message: ClientMessage, request_for: Callable[[ClientMessage], Request]
    ) -> None:
        if isinstance(message, PingMessage):
            self.send({"type": "pong"})
            return
        request_id = message.request_id
        if isinstance(message, AbortMessage):
            target = self._requests.get(request_id)
            if target is None:
                error = ProtocolError("UnknownRequest", "no request with this request_id is in flight here")
                self.send(error_message(error.error, request_id))
            else:
                group.start_soon(target.abort, "aborted by the client")
            return
        if request_id in self._requests:
            # Not tagged with the request_id: that id's messages belong to the request in flight.
            error = ProtocolError(
                "DuplicateRequest",
                "a request with this request_id is already in flight here; use a new request_id",
                details={"request_id": request_id},
            )
            self.send(error_message(error.error))
            return
        request = self._requests[request_id] = request_for(message)
        group.start_soon(self._run, request)

    async def _run(self, request: Request) -> None:
        try:
            await request.run(self)
        except Exception as exc:
            self.send_error(exc, request.request_id)
        finally:
            del self._requests[request.request_id]

    async def _write(self, scope: anyio.CancelScope, written: anyio.Event) -> None:
        try:
            with scope, self._inbox:
                async for text in self._inbox:
                    await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # Gone, or closed by the server (keep-alive timeout, shutdown), which then refuses sends
            # with a RuntimeError. The reader hears of it too; it stops reading now.
            self._client_gone = True
            self._open = False
            self._reading.cancel()
        finally:
            written.set()
