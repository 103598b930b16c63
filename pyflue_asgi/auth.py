"""Optional authentication: bearer tokens, or an async callable that decides.

``auth`` is a token, a collection of tokens (compared in constant time, each of them), or
``async def check(request_headers: Headers) -> bool``. Every path needs it except ``/health``
(load balancers probe it). A refusal is 401 with ``WWW-Authenticate: Bearer`` and the error
envelope, also for paths that do not exist, so the API's shape is not disclosed.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import envelope

__all__ = ["Auth", "AuthMiddleware", "check_auth"]

#: A token, several tokens, or an async predicate over the request headers.
Auth = str | Collection[str] | Callable[[Headers], Awaitable[bool]]

OPEN_PATHS = frozenset({"/health"})


def check_auth(auth: Auth) -> Callable[[Headers], Awaitable[bool]]:
    """``auth`` as one async predicate; ``ValueError`` for an empty token or list."""
    if callable(auth) and not isinstance(auth, str):
        if not inspect.iscoroutinefunction(auth) and not inspect.iscoroutinefunction(
            getattr(auth, "__call__", None)  # noqa: B004 - async callable objects
        ):
            raise TypeError("auth callable must be `async def check(headers) -> bool`")
        return auth
    tokens = [auth] if isinstance(auth, str) else list(auth)
    if not tokens or any(not isinstance(t, str) or not t for t in tokens):
        raise ValueError("auth tokens must be non-empty strings")
    encoded = [t.encode() for t in tokens]

    async def bearer(headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        candidate = given.strip().encode()
        ok = False
        for token in encoded:  # every token compared, so timing tells nothing about which
            ok |= hmac.compare_digest(candidate, token)
        return ok

    return bearer


class AuthMiddleware:
    """Refuses HTTP requests (and WebSocket handshakes) the predicate does not accept."""

    def __init__(self, app: ASGIApp, predicate: Callable[[Headers], Awaitable[bool]]) -> None:
        self.app = app
        self.predicate = predicate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if await self.predicate(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "unauthorized"})
            return
        response = JSONResponse(
            envelope("Unauthorized", "a valid bearer token is required: Authorization: Bearer <token>"),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="pyflue"'},
        )
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the mount point (the app may be mounted under a prefix)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
