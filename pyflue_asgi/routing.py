"""The route table's entries: one :class:`ApiRoute` per method and path, holding the endpoint and
what the OpenAPI document says about it (parameters, body, answers). The Starlette routes and the
document are both built from the same table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from .state import ServerState

__all__ = ["ApiRoute", "Endpoint", "Param"]

Endpoint = Callable[[Request, "ServerState"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter."""

    name: str
    where: Literal["path", "query", "header"]
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One operation. ``body``: a model, a raw JSON schema (workflow payloads), or ``None``.
    ``answers``: the success statuses and their models (``None``: no JSON body). ``sse``: it also
    answers ``text/event-stream`` when asked (``Accept``), or only that with ``sse="only"``.
    ``errors``: the 4xx/5xx statuses it can answer with the error envelope (beyond the ones every
    route has)."""

    method: str
    path: str
    endpoint: Endpoint
    operation_id: str
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | dict[str, Any] | None = None
    body_required: bool = False
    answers: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    answer_headers: dict[int, dict[str, str]] = field(default_factory=dict)
    sse: Literal[False, True, "only"] = False
    errors: tuple[int, ...] = ()
    open: bool = False  # reachable without authentication
