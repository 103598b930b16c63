"""``/workflows``: list them, and start a run (202 with its id, or ``?wait=result`` for the final
record, or ``Accept: text/event-stream`` for its events). A run started here belongs to the app,
not to the request: a client that leaves never cancels it, and it stays readable at ``/runs``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pyflue import RunRecord

from ..bodies import name_param, read_json, wants_sse
from ..errors import ApiError, public
from ..routing import ApiRoute, Param
from ..schemas import MAX_NAME, NAME_PATTERN, RunAccepted, RunRecordBody, WorkflowList
from ..sse import SSE_HEADERS, run_stream
from ..state import ServerState

__all__ = ["record_body", "routes", "run_location"]


async def list_workflows(request: Request, state: ServerState) -> Response:
    flows = state.project.workflows
    body = {
        "workflows": [
            {"name": n, "description": flows[n].description, "payload_schema": flows[n].payload_schema}
            for n in sorted(flows)
        ]
    }
    return JSONResponse(body)


async def start(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    wait = request.query_params.get("wait")
    if wait not in (None, "result"):
        raise ApiError(
            422,
            "ValidationError",
            "query.wait: the only value is `result`",
            details=[{"path": "query.wait", "message": "the only value is `result`"}],
        )
    definition = state.project.workflow(name)
    data = await read_json(request, state.settings.max_body)
    payload = _unwrap(data, definition.payload_schema)
    handle = await state.start_run(name, payload)
    location = {"Location": run_location(request, handle.run_id)}
    if wants_sse(request):
        stream = run_stream(
            state.feeds, handle.run_id, 0, state.settings.heartbeat, debug=state.settings.debug
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers={**SSE_HEADERS, **location})
    if wait == "result":
        await handle.done.wait()
        record = handle.record or await state.run_store.get_run(handle.run_id)
        if record is None:
            raise ApiError(500, "InternalError", f"run {handle.run_id} has no record")
        return JSONResponse(record_body(record, debug=state.settings.debug), headers=location)
    return JSONResponse({"run_id": handle.run_id, "status": "running"}, status_code=202, headers=location)


def _unwrap(data: Any, schema: dict[str, Any] | None) -> Any:
    """PyFlue 0.2.0 wrapped payloads as ``{"payload": {...}}``; unwrapped unless the workflow's own
    payload has a top-level ``payload`` field."""
    if not (isinstance(data, dict) and set(data) == {"payload"}):
        return data
    if schema is not None and "payload" in schema.get("properties", {}):
        return data
    return data["payload"]


def run_location(request: Request, run_id: str) -> str:
    """The run's URL path, below the app's mount point."""
    return f"{request.scope.get('root_path', '')}/runs/{quote(run_id, safe=':')}"


def record_body(record: RunRecord, *, debug: bool) -> dict[str, Any]:
    return public(record.model_dump(mode="json"), debug=debug)


routes = [
    ApiRoute(
        "GET",
        "/workflows",
        list_workflows,
        "listWorkflows",
        "The project's workflows with their payload JSON schemas",
        "workflows",
        answers={200: WorkflowList},
    ),
    ApiRoute(
        "POST",
        "/workflows/{name}",
        start,
        "startWorkflow",
        "Start a run: 202 with its id; ?wait=result for the final record; Accept: text/event-stream "
        "for its events",
        "workflows",
        params=(
            Param(
                "name",
                "path",
                {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME},
                "the workflow",
            ),
            Param("wait", "query", {"type": "string", "enum": ["result"]}, "answer when the run has ended"),
        ),
        body={"description": "the payload (any JSON value; the workflow's Payload validates it)"},
        answers={202: RunAccepted, 200: RunRecordBody},
        answer_headers={202: {"Location": "the run's URL"}, 200: {"Location": "the run's URL"}},
        sse=True,
        errors=(400, 404, 413, 415, 422),
    ),
]
