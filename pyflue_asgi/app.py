"""``create_app(project)``: the project's agents, workflows and runs as a plain ASGI 3 app.

The app is Starlette inside, wrapped by the optional bearer check; the route table
(:mod:`pyflue_asgi.routes`) gives both the Starlette routes and the OpenAPI document. Run it under
any ASGI server (uvicorn, hypercorn, granian) or mount it under a prefix in Starlette or FastAPI;
a host app must then run its lifespan: ``Starlette(routes=[Mount("/ai", app)],
lifespan=app.lifespan)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pyflue import Project
from pyflue.resuming import Resumer

from . import openapi
from .auth import Auth, AuthMiddleware, check_auth
from .errors import error_response, exception_handlers
from .routes import table
from .routing import ApiRoute
from .state import ServerState, Settings, not_serving
from .ui import DashboardApp
from .ws import SocketAuth, WebSocketOptions, socket_routes

__all__ = ["PyFlueApp", "create_app"]


class PyFlueApp:
    """The ASGI app. ``state`` holds what it serves with; ``openapi`` is its document;
    ``lifespan`` is for host apps that mount it (Starlette and FastAPI call it with themselves)."""

    def __init__(
        self,
        project: Project,
        auth: Auth | None,
        settings: Settings,
        websocket: WebSocketOptions,
        ui: bool = False,
        auto_resume: bool = False,
    ) -> None:
        routes = table()
        self.openapi: dict[str, Any] = openapi.build(routes, auth=auth is not None)
        self.state = ServerState(project, settings, self.openapi)
        self.auto_resume = auto_resume
        self.routes = routes
        inner = Starlette(
            routes=[*(_route(r, self.state) for r in routes), *socket_routes(self.state, websocket)],
            exception_handlers=exception_handlers(settings.debug),
            lifespan=self.lifespan,
        )
        self._app: ASGIApp = inner
        if auth is not None:
            predicate = check_auth(auth)
            self._app = SocketAuth(AuthMiddleware(inner, predicate), predicate)
        self._ui = DashboardApp() if ui else None  # static pages, before auth: they hold no data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._ui is not None and self._ui.claims(scope):
            await self._ui(scope, receive, send)
            return
        runtime = self.state.runtime
        if runtime is None or scope["type"] == "lifespan":
            await self._app(scope, receive, send)
            return
        with runtime.activate():  # requests run in tasks of their own, outside the lifespan's context
            await self._app(scope, receive, send)

    def lifespan(self, app: Any = None) -> AbstractAsyncContextManager[None]:
        """The app's lifespan as an async context manager: opens the stores, recovers orphaned
        runs (and with ``auto_resume`` resumes the resumable ones, at start and periodically), and
        at the end lets runs in flight finish for the grace period, then records those still running
        ``interrupted`` (resumable ones are continued after a restart)."""
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self.state.lifespan():
            if not self.auto_resume:
                yield
                return
            async with Resumer(self.state.project, grace_period=self.state.settings.grace_period):
                yield


def create_app(
    project: Project | str | os.PathLike[str],
    *,
    auth: Auth | None = None,
    debug: bool = False,
    max_body: int = 1 << 20,
    heartbeat: float = 15.0,
    poll_interval: float = 0.05,
    feed_window: int = 1_024,
    grace_period: float = 10.0,
    websocket: WebSocketOptions | None = None,
    ui: bool = False,
    auto_resume: bool = False,
) -> PyFlueApp:
    """The HTTP API of ``project`` (a :class:`~pyflue.Project` or its directory).

    ``auth``: a bearer token, several, or ``async def check(headers) -> bool``; ``/health`` stays
    open. ``debug``: internal error text in answers (never in production). ``max_body``: the request
    body limit in bytes (413 above it). ``heartbeat``: seconds between SSE keep-alive comments.
    ``poll_interval``: the longest a followed run or dispatch goes unread; streams are woken by
    the store's watch at each change, so this only bounds a missed wake-up. ``feed_window``: events
    of a run kept in memory for its subscribers. ``grace_period``: seconds runs in flight get at shutdown.
    ``websocket``: the WebSocket endpoints' options (:class:`~pyflue_asgi.ws.WebSocketOptions`).
    ``ui``: serve the dashboard at ``/ui`` (docs/dashboard.md). ``auto_resume``: resume the project's
    interrupted resumable runs while serving (:class:`pyflue.Resumer`, docs/resumable.md).
    """
    if not isinstance(project, Project):
        project = Project.load(project)
    if max_body < 1 or heartbeat <= 0 or poll_interval <= 0 or feed_window < 1 or grace_period < 0:
        raise ValueError(
            "max_body, heartbeat, poll_interval and feed_window must be positive; grace_period >= 0"
        )
    settings = Settings(
        debug=debug,
        max_body=max_body,
        heartbeat=heartbeat,
        poll_interval=poll_interval,
        feed_window=feed_window,
        grace_period=grace_period,
    )
    return PyFlueApp(project, auth, settings, websocket or WebSocketOptions(), ui, auto_resume)


def _route(route: ApiRoute, state: ServerState) -> Route:
    debug = state.settings.debug

    async def endpoint(request: Request) -> Response:
        try:
            if not route.open and not state.serving:
                raise not_serving()
            return await route.endpoint(request, state)
        except Exception as exc:
            return error_response(exc, debug=debug)

    return Route(route.path, endpoint, methods=[route.method], name=route.operation_id)
