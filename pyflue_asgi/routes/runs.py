"""``/runs``: the run store over HTTP. List, read, page through events, follow (SSE that resumes
with ``Last-Event-ID`` or ``?after=``), cancel. Works for runs of any process sharing the store."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pyflue import cancel_run, get_run, list_runs
from pyflue.errors import ConfigError
from pyflue.stores.runs import RUN_STATUSES

from ..bodies import id_param, query_int
from ..errors import ApiError, public
from ..routing import ApiRoute, Param
from ..schemas import ID_PATTERN, MAX_ID, CancelResult, EventList, RunList, RunRecordBody
from ..sse import SSE_HEADERS, resume_after, run_stream
from ..state import ServerState
from .workflows import record_body

__all__ = ["routes"]

MAX_LIMIT = 1_000
MAX_SEQ = 2**62


async def runs_page(request: Request, state: ServerState) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise _invalid("query.status", f"must be one of {', '.join(RUN_STATUSES)}")
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    workflow = request.query_params.get("workflow")
    try:
        page = await list_runs(
            workflow=workflow,
            status=status,
            limit=limit,
            cursor=request.query_params.get("cursor"),
            store=state.run_store,
        )
    except ConfigError as exc:  # a cursor that is not one of ours
        raise _invalid("query.cursor", str(exc)) from None
    return JSONResponse(
        {
            "runs": [record_body(r, debug=state.settings.debug) for r in page.runs],
            "next_cursor": page.next_cursor,
        }
    )


async def run_record(request: Request, state: ServerState) -> Response:
    run_id = _run_id(request)
    record = await get_run(run_id, store=state.run_store)
    return JSONResponse(record_body(record, debug=state.settings.debug))


async def run_events(request: Request, state: ServerState) -> Response:
    run_id = _run_id(request)
    after = query_int(request, "after", 0, 0, MAX_SEQ)
    limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
    raw_types = request.query_params.get("types")
    wanted = {t for t in raw_types.split(",") if t} if raw_types else None
    store = state.run_store
    await get_run(run_id, store=store)  # 404 for an unknown run
    events: list[dict[str, Any]] = []
    position, more = after, False
    while not more:
        batch = await store.read_events(run_id, after_seq=position, limit=MAX_LIMIT)
        for event in batch:
            if len(events) == limit:
                more = True
                break
            position = event.seq
            if wanted is None or event.type in wanted:
                events.append(public(event.model_dump(), debug=state.settings.debug))
        if len(batch) < MAX_LIMIT:
            break
    return JSONResponse({"events": events, "next_after": position if more else None})


async def run_follow(request: Request, state: ServerState) -> Response:
    run_id = _run_id(request)
    await get_run(run_id, store=state.run_store)  # 404 before the stream starts
    after = resume_after(request, MAX_SEQ)
    stream = run_stream(state.feeds, run_id, after, state.settings.heartbeat, debug=state.settings.debug)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def cancel(request: Request, state: ServerState) -> Response:
    run_id = _run_id(request)
    requested = await cancel_run(run_id, reason="cancelled over HTTP", store=state.run_store)
    record = await get_run(run_id, store=state.run_store)
    return JSONResponse({"run_id": run_id, "cancel_requested": requested, "status": record.status})


def _run_id(request: Request) -> str:
    return id_param(request.path_params["run_id"], ("path", "run_id"))


def _invalid(path: str, message: str) -> ApiError:
    return ApiError(
        422, "ValidationError", f"{path}: {message}", details=[{"path": path, "message": message}]
    )


_RUN = Param(
    "run_id",
    "path",
    {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN},
    "the run id",
)
_AFTER = Param(
    "after", "query", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}, "only events with a greater seq"
)

routes = [
    ApiRoute(
        "GET",
        "/runs",
        runs_page,
        "listRuns",
        "Runs, newest first, one page at a time",
        "runs",
        params=(
            Param("workflow", "query", {"type": "string"}, "only runs of this workflow"),
            Param(
                "status",
                "query",
                {"type": "string", "enum": list(RUN_STATUSES)},
                "only runs with this status",
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                "at most this many runs",
            ),
            Param("cursor", "query", {"type": "string"}, "the next_cursor of the previous page"),
        ),
        answers={200: RunList},
        errors=(422,),
    ),
    ApiRoute(
        "GET",
        "/runs/{run_id}",
        run_record,
        "getRun",
        "A run's record",
        "runs",
        params=(_RUN,),
        answers={200: RunRecordBody},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/runs/{run_id}/events",
        run_events,
        "getRunEvents",
        "A page of a run's recorded events",
        "runs",
        params=(
            _RUN,
            _AFTER,
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                "at most this many events",
            ),
            Param("types", "query", {"type": "string"}, "only these event types (comma-separated)"),
        ),
        answers={200: EventList},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/runs/{run_id}/stream",
        run_follow,
        "streamRun",
        "A run's events as server-sent events (id = seq) until it ends; resumes with Last-Event-ID",
        "runs",
        params=(
            _RUN,
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
        "/runs/{run_id}/cancel",
        cancel,
        "cancelRun",
        "Ask a running run to cancel (from any process); it ends `cancelled`",
        "runs",
        params=(_RUN,),
        answers={200: CancelResult},
        errors=(404, 422),
    ),
]
