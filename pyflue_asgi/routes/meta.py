"""``/health`` (open, for load balancers) and ``/openapi.json`` (the document of this table)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyflue import __version__

from ..routing import ApiRoute
from ..schemas import Health
from ..state import ServerState

__all__ = ["routes"]


async def health(request: Request, state: ServerState) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def openapi(request: Request, state: ServerState) -> Response:
    return JSONResponse(state.openapi)


routes = [
    ApiRoute(
        "GET",
        "/health",
        health,
        "health",
        "Liveness: always open, no token needed",
        "meta",
        answers={200: Health},
        open=True,
    ),
    ApiRoute(
        "GET",
        "/openapi.json",
        openapi,
        "openapi",
        "This API as an OpenAPI 3.1 document",
        "meta",
        answers={200: None},
    ),
]
