"""Durable dispatch over HTTP: accept input for an agent instance (202 with a receipt once it is
committed), list and read dispatches, page through or follow a delivery's events (SSE that resumes
with ``Last-Event-ID`` or ``?after=``), cancel one.

The app's lifespan runs the worker that delivers (:class:`pyflue.Dispatcher`); these routes only
read and write the project's dispatch store, so they show and cancel dispatches of any process or
worker sharing it. Status codes: an invalid body or an empty input is 422 (like a prompt's); an
unknown agent or dispatch is 404; a ``key`` already used for another (agent, instance, session) is
409 ``KeyConflict`` (the same key for the same target answers the first receipt again).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_jsonable_python
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pyflue import DispatchReceipt, cancel_dispatch, dispatch, get_dispatch, list_dispatches
from pyflue.errors import ConfigError, InvalidIdError, UnknownAgentError
from pyflue.models.messages import TextPart, user_parts
from pyflue.stores.dispatches import DISPATCH_STATUSES, DispatchRecord

from ..bodies import id_param, name_param, query_int, read_json, validate
from ..errors import ApiError, public
from ..routing import ApiRoute, Param
from ..schemas import ID_PATTERN, MAX_ID, MAX_NAME, NAME_PATTERN, EventList
from ..sse import SSE_HEADERS, dispatch_stream, resume_after
from ..state import ServerState

__all__ = ["DispatchBody", "DispatchList", "DispatchReceiptBody", "routes"]

MAX_LIMIT = 1_000
MAX_SEQ = 2**62


class DispatchBody(BaseModel):
    """``input``: text, or a list of text/image parts (what a prompt takes); ``session``: which
    session of the instance gets it; ``key``: makes the request idempotent."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[dict[str, Any]] = Field(
        description="text, or a non-empty list of text/image parts; not blank"
    )
    session: str = Field("default", min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_ID,
        pattern=ID_PATTERN,
        description="idempotency key: the same key for the same target returns the first receipt",
    )

    @field_validator("input")
    @classmethod
    def _deliverable(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        try:
            parts = user_parts(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if all(isinstance(part, TextPart) and not part.text.strip() for part in parts):
            raise ValueError("the input is empty; send some text or an image")
        return value

    @field_validator("session", "key")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable text")
        return value


class DispatchReceiptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dispatch_id: str
    agent: str
    instance_id: str
    session_id: str
    accepted_at: str
    status: Literal["queued", "running", "delivered", "failed", "cancelled"]


class DispatchList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dispatches: list[DispatchRecord]
    next_cursor: str | None


async def accept(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    instance = id_param(request.path_params["id"], ("path", "id"))
    body = validate(DispatchBody, await read_json(request, state.settings.max_body))
    store = state.dispatch_store
    try:
        receipt = await dispatch(
            name,
            id=instance,
            input=body.input,
            session=body.session,
            key=body.key,
            project=state.project,
            store=store,
        )
    except (InvalidIdError, UnknownAgentError):
        raise
    except ConfigError as exc:
        if body.key is None:  # the body passed validation: nothing else of the request is refused
            raise ApiError(422, "ValidationError", str(exc)) from None
        raise ApiError(409, "KeyConflict", str(exc)) from None
    location = f"{request.scope.get('root_path', '')}/dispatches/{quote(receipt.dispatch_id, safe=':')}"
    return JSONResponse(_receipt(receipt), status_code=202, headers={"Location": location})


async def dispatches_page(request: Request, state: ServerState) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in DISPATCH_STATUSES:
        raise _invalid("query.status", f"must be one of {', '.join(DISPATCH_STATUSES)}")
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    params = request.query_params
    try:
        page = await list_dispatches(
            agent=params.get("agent"),
            id=_optional_id(params.get("id"), "id"),
            session=_optional_id(params.get("session"), "session"),
            status=status,
            limit=limit,
            cursor=params.get("cursor"),
            store=state.dispatch_store,
        )
    except ConfigError as exc:  # a cursor that is not one of ours
        raise _invalid("query.cursor", str(exc)) from None
    debug = state.settings.debug
    return JSONResponse(
        {"dispatches": [_record(r, debug) for r in page.dispatches], "next_cursor": page.next_cursor}
    )


async def dispatch_record(request: Request, state: ServerState) -> Response:
    record = await get_dispatch(_dispatch_id(request), store=state.dispatch_store)
    return JSONResponse(_record(record, state.settings.debug))


async def dispatch_events(request: Request, state: ServerState) -> Response:
    dispatch_id = _dispatch_id(request)
    after = query_int(request, "after", 0, 0, MAX_SEQ)
    limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
    store = state.dispatch_store
    await get_dispatch(dispatch_id, store=store)  # 404 for an unknown dispatch
    batch = await store.read_events(dispatch_id, after_seq=after, limit=limit + 1)
    more = len(batch) > limit
    events = batch[:limit]
    debug = state.settings.debug
    return JSONResponse(
        {
            "events": [public(e.model_dump(), debug=debug) for e in events],
            "next_after": events[-1].seq if more else None,
        }
    )


async def dispatch_follow(request: Request, state: ServerState) -> Response:
    dispatch_id = _dispatch_id(request)
    store = state.dispatch_store
    await get_dispatch(dispatch_id, store=store)  # 404 before the stream starts
    after = resume_after(request, MAX_SEQ)
    settings = state.settings
    stream = dispatch_stream(
        store,
        dispatch_id,
        after,
        settings.heartbeat,
        poll_interval=settings.poll_interval,
        window=settings.feed_window,
        debug=settings.debug,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def cancel(request: Request, state: ServerState) -> Response:
    record = await cancel_dispatch(_dispatch_id(request), "cancelled over HTTP", store=state.dispatch_store)
    return JSONResponse(_record(record, state.settings.debug))


def _receipt(receipt: DispatchReceipt) -> dict[str, Any]:
    return {
        "dispatch_id": receipt.dispatch_id,
        "agent": receipt.agent,
        "instance_id": receipt.instance_id,
        "session_id": receipt.session_id,
        "accepted_at": to_jsonable_python(receipt.accepted_at),
        "status": receipt.status,
    }


def _record(record: DispatchRecord, debug: bool) -> dict[str, Any]:
    """A record as clients see it: a failed outcome's typed error stays, its traceback only with
    ``debug``."""
    data = record.model_dump(mode="json")
    outcome = data.get("outcome")
    if isinstance(outcome, dict):
        data["outcome"] = public(outcome, debug=debug)
    return data


def _dispatch_id(request: Request) -> str:
    return id_param(request.path_params["dispatch_id"], ("path", "dispatch_id"))


def _optional_id(value: str | None, key: str) -> str | None:
    return None if value is None else id_param(value, ("query", key))


def _invalid(path: str, message: str) -> ApiError:
    return ApiError(
        422, "ValidationError", f"{path}: {message}", details=[{"path": path, "message": message}]
    )


_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN}
_DISPATCH = Param("dispatch_id", "path", _ID_SCHEMA, "the dispatch id (`dispatch:<ulid>`)")
_AFTER = Param(
    "after", "query", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}, "only events with a greater seq"
)

routes = [
    ApiRoute(
        "POST",
        "/agents/{name}/{id}/dispatch",
        accept,
        "dispatchToAgent",
        "Accept input for an agent instance's session, durably: 202 with a receipt once it is "
        "committed; a worker delivers it in order",
        "dispatches",
        params=(
            Param(
                "name",
                "path",
                {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME},
                "the agent",
            ),
            Param("id", "path", _ID_SCHEMA, "the instance id"),
        ),
        body=DispatchBody,
        body_required=True,
        answers={202: DispatchReceiptBody},
        answer_headers={202: {"Location": "the dispatch's URL"}},
        errors=(404, 409, 422),
    ),
    ApiRoute(
        "GET",
        "/dispatches",
        dispatches_page,
        "listDispatches",
        "Dispatches, newest first, one page at a time",
        "dispatches",
        params=(
            Param("agent", "query", {"type": "string"}, "only dispatches to this agent"),
            Param("id", "query", _ID_SCHEMA, "only dispatches to this instance"),
            Param("session", "query", _ID_SCHEMA, "only dispatches to this session"),
            Param(
                "status",
                "query",
                {"type": "string", "enum": list(DISPATCH_STATUSES)},
                "only dispatches with this status",
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                "at most this many dispatches",
            ),
            Param("cursor", "query", {"type": "string"}, "the next_cursor of the previous page"),
        ),
        answers={200: DispatchList},
        errors=(422,),
    ),
    ApiRoute(
        "GET",
        "/dispatches/{dispatch_id}",
        dispatch_record,
        "getDispatch",
        "A dispatch's record: status, attempts, outcome",
        "dispatches",
        params=(_DISPATCH,),
        answers={200: DispatchRecord},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/dispatches/{dispatch_id}/events",
        dispatch_events,
        "getDispatchEvents",
        "A page of the recorded events of a dispatch's deliveries (every attempt)",
        "dispatches",
        params=(
            _DISPATCH,
            _AFTER,
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                "at most this many events",
            ),
        ),
        answers={200: EventList},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/dispatches/{dispatch_id}/stream",
        dispatch_follow,
        "streamDispatch",
        "A dispatch's delivery events as server-sent events (id = seq) until it is finished; "
        "resumes with Last-Event-ID",
        "dispatches",
        params=(
            _DISPATCH,
            _AFTER,
            Param(
                "Last-Event-ID", "header", {"type": "string"}, "resume after this seq (set by EventSource)"
            ),
        ),
        sse="only",
        errors=(404, 422),
    ),
    ApiRoute(
        "POST",
        "/dispatches/{dispatch_id}/cancel",
        cancel,
        "cancelDispatch",
        "Cancel one dispatch: queued, it is never delivered; running, its operation is aborted; "
        "finished, nothing changes. Answers the record",
        "dispatches",
        params=(_DISPATCH,),
        answers={200: DispatchRecord},
        errors=(404, 422),
    ),
]
