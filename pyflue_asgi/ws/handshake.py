"""Authentication of WebSocket handshakes.

Browsers cannot set headers on a WebSocket, so a ``token`` query parameter stands in for
``Authorization: Bearer <token>`` (when that header is absent); the check is the app's own
predicate. A refused socket is accepted and then closed with 4401, before ``ready``: an ASGI
server answers a close before accept with an HTTP 403, and a browser shows its scripts neither
that status nor any reason, only a failed connection. A query token may appear in access logs;
clients that can set headers should.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["UNAUTHORIZED", "SocketAuth"]

UNAUTHORIZED = 4401


class SocketAuth:
    """Checks WebSocket handshakes with ``predicate`` (other scopes pass through to ``app``)."""

    def __init__(self, app: ASGIApp, predicate: Callable[[Headers], Awaitable[bool]]) -> None:
        self.app = app
        self.predicate = predicate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope = _query_token(scope)
        if await self.predicate(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": UNAUTHORIZED, "reason": "unauthorized"})


def _query_token(scope: Scope) -> Scope:
    """``scope`` with a ``token`` query parameter moved into the Authorization header (and out of
    the query string); unchanged when there is none or the header is already set."""
    query: bytes = scope.get("query_string", b"")
    if b"token=" not in query:
        return scope
    headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
    if any(name.lower() == b"authorization" for name, _ in headers):
        return scope
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    token = next((value for key, value in pairs if key == "token"), None)
    if not token:
        return scope
    rest = urlencode([(k, v) for k, v in pairs if k != "token"], encoding="latin-1")
    headers.append((b"authorization", b"Bearer " + token.encode("latin-1")))
    return {**scope, "headers": headers, "query_string": rest.encode("latin-1")}
