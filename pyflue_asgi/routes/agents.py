"""``/agents``: list them, prompt an instance (JSON or SSE), abort a session's operation.

Prompts to one session take turns (the core's FIFO). ``multitask`` picks what a prompt does when
the session is busy: ``enqueue`` (default) waits its turn, ``reject`` answers 409 at once,
``interrupt`` aborts the operation in flight and then takes its turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from pydantic import WithJsonSchema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from pyflue import AgentHarness, PromptResult, Session

from ..bodies import id_param, name_param, read_json, validate, wants_sse
from ..errors import ApiError
from ..routing import ApiRoute, Param
from ..schemas import (
    ID_PATTERN,
    MAX_ID,
    MAX_NAME,
    NAME_PATTERN,
    AbortResult,
    AgentList,
    PromptBody,
    PromptReply,
)
from ..sse import SSE_HEADERS, prompt_stream
from ..state import Hold, ServerState

__all__ = ["routes"]

MULTITASK = ("enqueue", "reject", "interrupt")


async def list_agents(request: Request, state: ServerState) -> Response:
    agents = state.project.agents
    body = {"agents": [{"name": n, "description": agents[n].description} for n in sorted(agents)]}
    return JSONResponse(body)


async def prompt(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    instance = id_param(request.path_params["id"], ("path", "id"))
    multitask = request.query_params.get("multitask", "enqueue")
    if multitask not in MULTITASK:
        raise ApiError(
            422,
            "ValidationError",
            f"query.multitask: must be one of {', '.join(MULTITASK)}",
            details=[{"path": "query.multitask", "message": f"must be one of {', '.join(MULTITASK)}"}],
        )
    data = await read_json(request, state.settings.max_body)
    body = validate(PromptBody, _unwrap(data))
    state.project.agent(name)  # 404 naming the agents before anything is initialised
    harness = await state.project.instance(name, instance)
    session = await harness.session(body.session)
    key = (name, instance, body.session)
    if multitask == "reject" and (state.busy(key) or session.operation_id is not None):
        raise ApiError(
            409,
            "SessionBusy",
            f"session {body.session!r} of {name}/{instance} is busy; retry later, or send "
            "multitask=enqueue to wait for its turn or multitask=interrupt to abort the running prompt",
        )
    result = _result_type(body.result_schema)
    model = _model_name(harness)
    hold = state.hold(key)  # no await since the busy check: two rejects cannot both pass
    if wants_sse(request):
        return _Streamed(_stream(state, session, body, result, multitask, model, hold), hold)
    with hold:
        if multitask == "interrupt" and session.operation_id is not None:
            await session.abort("interrupted by a newer prompt")
        outcome = await session.prompt(body.input, result=result)
    return JSONResponse(_reply(outcome, model))


async def _stream(
    state: ServerState,
    session: Session,
    body: PromptBody,
    result: Any,
    multitask: str,
    model: str,
    hold: Hold,
) -> AsyncIterator[bytes]:
    with hold:
        if multitask == "interrupt" and session.operation_id is not None:
            await session.abort("interrupted by a newer prompt")
        async for chunk in prompt_stream(
            session.stream(body.input, result=result), lambda r: _reply(r, model), debug=state.settings.debug
        ):
            yield chunk


class _Streamed(StreamingResponse):
    """An SSE answer that releases its session hold however it ends (also when the client left
    before the body started, so the generator never ran)."""

    def __init__(self, body: AsyncIterator[bytes], hold: Hold) -> None:
        super().__init__(body, media_type="text/event-stream", headers=SSE_HEADERS)
        self._hold = hold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hold.release()


async def abort(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    instance = id_param(request.path_params["id"], ("path", "id"))
    session_id = id_param(request.query_params.get("session", "default"), ("query", "session"))
    state.project.agent(name)
    harness = await state.project.instance(name, instance)
    session = await harness.session(session_id)
    aborted = await session.abort("aborted over HTTP")
    return JSONResponse({"aborted": aborted, "session": session_id})


def _unwrap(data: Any) -> Any:
    """PyFlue 0.2.0 sent ``{"payload": {"prompt": ...}}``: the wrapper is accepted too."""
    if isinstance(data, dict) and set(data) == {"payload"} and isinstance(data["payload"], dict):
        return data["payload"]
    return data


def _result_type(schema: dict[str, Any] | None) -> Any:
    """A JSON schema as a ``result=`` type: the model is asked for exactly that schema, and the
    parsed JSON comes back as ``output``."""
    if schema is None:
        return None
    base: Any = dict[str, Any] if schema.get("type", "object") == "object" else Any
    return Annotated[base, WithJsonSchema(schema)]


def _model_name(harness: AgentHarness) -> str:
    model = harness.model
    return f"{model.provider}/{model.model_name}"


def _reply(result: PromptResult, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": result.text,
        "usage": result.usage.to_dict(),
        "operation_id": result.operation_id,
        "finish_reason": result.finish_reason,
        "model": model,
    }
    if result.output is not None:
        body["output"] = result.output
    return {"result": body}


_NAME = Param("name", "path", {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME}, "the agent")
_ID = Param(
    "id",
    "path",
    {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN},
    "the instance id",
)

routes = [
    ApiRoute(
        "GET",
        "/agents",
        list_agents,
        "listAgents",
        "The project's agents",
        "agents",
        answers={200: AgentList},
    ),
    ApiRoute(
        "POST",
        "/agents/{name}/{id}",
        prompt,
        "promptAgent",
        "Prompt an agent instance; with Accept: text/event-stream, its events then the result",
        "agents",
        params=(
            _NAME,
            _ID,
            Param(
                "multitask",
                "query",
                {"type": "string", "enum": list(MULTITASK), "default": "enqueue"},
                "when the session is busy: wait (enqueue), answer 409 (reject), or abort the running prompt",
            ),
        ),
        body=PromptBody,
        body_required=True,
        answers={200: PromptReply},
        sse=True,
        errors=(400, 404, 409, 413, 415, 422, 502, 504),
    ),
    ApiRoute(
        "POST",
        "/agents/{name}/{id}/abort",
        abort,
        "abortAgentSession",
        "Abort the operation running on one session of an instance (queued prompts go on)",
        "agents",
        params=(
            _NAME,
            _ID,
            Param(
                "session",
                "query",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID,
                    "pattern": ID_PATTERN,
                    "default": "default",
                },
                "the session",
            ),
        ),
        answers={200: AbortResult},
        errors=(404, 422),
    ),
]
