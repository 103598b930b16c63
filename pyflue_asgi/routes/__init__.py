"""The route table: every HTTP operation of the API, one module per resource.

The Starlette routes and the OpenAPI document are both built from :func:`table`. A resource joins
the API by adding its module's ``routes`` here (durable dispatch's ``/agents/{name}/{id}/dispatch``
and ``/dispatches`` routes join as ``routes/dispatches.py``). WebSocket endpoints take the same
paths as their HTTP routes (``/agents/{name}/{id}``, ``/workflows/{name}``): Starlette matches a
route by scope type, so an HTTP route and a WebSocket route on one path never shadow each other.
"""

from __future__ import annotations

from ..routing import ApiRoute
from . import agents, dispatches, meta, runs, skills, workflows

__all__ = ["table"]


def table() -> list[ApiRoute]:
    return [*meta.routes, *agents.routes, *workflows.routes, *runs.routes, *dispatches.routes, *skills.routes]
