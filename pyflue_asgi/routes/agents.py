"""``/agents``: list them, prompt an instance (JSON or SSE), abort a session's operation, and read
what the session store holds: an agent's instances, an instance's sessions, a session's messages.

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
from pyflue.compaction import summary_of
from pyflue.models.messages import messages_adapter
from pyflue.stores.sessions import SessionKey, StoredMessage

from ..bodies import id_param, name_param, query_int, read_json, validate, wants_sse
from ..errors import ApiError
from ..routing import ApiRoute, Param
from ..schemas import (
    ID_PATTERN,
    MAX_ID,
    MAX_NAME,
    NAME_PATTERN,
    AbortResult,
    AgentList,
    InstanceList,
    MessageList,
    PromptBody,
    PromptReply,
    SessionList,
)
from ..sse import SSE_HEADERS, prompt_stream
from ..state import Hold, ServerState

__all__ = ["routes"]

MULTITASK = ("enqueue", "reject", "interrupt")
MAX_LIMIT = 1_000
MAX_SEQ = 2**62


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
    model = model_name(harness)
    hold = state.hold(key)  # no await since the busy check: two rejects cannot both pass
    if wants_sse(request):
        return _Streamed(_stream(state, session, body, result, multitask, model, hold), hold)
    with hold:
        if multitask == "interrupt" and session.operation_id is not None:
            await session.abort("interrupted by a newer prompt")
        outcome = await session.prompt(body.input, result=result)
    return JSONResponse({"result": result_body(outcome, model)})


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
            session.stream(body.input, result=result),
            lambda r: {"result": result_body(r, model)},
            debug=state.settings.debug,
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


async def list_instances(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
    after = request.query_params.get("after")
    if after is not None:
        after = id_param(after, ("query", "after"))
    state.project.agent(name)  # 404 naming the agents there are
    # One more than asked for says whether another page follows, without a count.
    found = await state.project.session_store.list_instances(name, limit=limit + 1, after=after)
    page = found[:limit]
    return JSONResponse({"instances": page, "next_after": page[-1] if len(found) > limit else None})


async def list_sessions(request: Request, state: ServerState) -> Response:
    name = name_param(request)
    instance = id_param(request.path_params["id"], ("path", "id"))
    state.project.agent(name)
    sessions = await state.project.session_store.list_sessions(name, instance)
    return JSONResponse({"instance_id": instance, "sessions": sessions})


async def session_messages(request: Request, state: ServerState) -> Response:
    """A page of the stored history. The store reads the whole history (as a prompt does); the page
    bounds the answer. ``version`` tells a client paging through that the history changed between
    its pages (a compaction rewrites it): it then starts again."""
    name = name_param(request)
    instance = id_param(request.path_params["id"], ("path", "id"))
    session_id = id_param(request.path_params["session"], ("path", "session"))
    after = query_int(request, "after", 0, 0, MAX_SEQ)
    limit = query_int(request, "limit", 200, 1, MAX_LIMIT)
    state.project.agent(name)
    history = await state.project.session_store.load(SessionKey(name, instance, session_id))
    page = history[after : after + limit]
    more = after + len(page) < len(history)
    return JSONResponse(
        {
            "agent": name,
            "instance_id": instance,
            "session_id": session_id,
            "version": history.version,
            "messages": [_message_body(after + i + 1, m) for i, m in enumerate(page)],
            "next_after": after + len(page) if more else None,
        }
    )


def _message_body(seq: int, message: StoredMessage) -> dict[str, Any]:
    """A message in its JSON form (images' bytes as base64), with its position and, for a compaction
    summary, the summary text."""
    body: dict[str, Any] = {
        "seq": seq,
        **messages_adapter().dump_python([message], mode="json", exclude_none=True)[0],
    }
    summary = summary_of(message)
    if summary is not None:
        body["compaction_summary"] = summary
    return body


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


def model_name(harness: AgentHarness) -> str:
    """The ``provider/model`` an agent instance answers with (as prompt results report it)."""
    model = harness.model
    return f"{model.provider}/{model.model_name}"


def result_body(result: PromptResult, model: str) -> dict[str, Any]:
    """A prompt's result as HTTP and WebSocket clients get it (one shape for both)."""
    body: dict[str, Any] = {
        "text": result.text,
        "usage": result.usage.to_dict(),
        "operation_id": result.operation_id,
        "finish_reason": result.finish_reason,
        "model": model,
    }
    if result.output is not None:
        body["output"] = result.output
    return body


_NAME = Param("name", "path", {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME}, "the agent")
_ID = Param(
    "id",
    "path",
    {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN},
    "the instance id",
)

_SESSION = Param(
    "session",
    "path",
    {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN},
    "the session id",
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
        "GET",
        "/agents/{name}/instances",
        list_instances,
        "listAgentInstances",
        "The agent's instances that hold messages, sorted, a page at a time",
        "agents",
        params=(
            _NAME,
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                "at most this many ids",
            ),
            Param(
                "after",
                "query",
                {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN},
                "only ids sorting after this one (the previous page's next_after)",
            ),
        ),
        answers={200: InstanceList},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/agents/{name}/{id}/sessions",
        list_sessions,
        "listInstanceSessions",
        "The instance's sessions that hold messages, sorted",
        "agents",
        params=(_NAME, _ID),
        answers={200: SessionList},
        errors=(404, 422),
    ),
    ApiRoute(
        "GET",
        "/agents/{name}/{id}/sessions/{session}/messages",
        session_messages,
        "listSessionMessages",
        "A page of a session's stored history: user, assistant (text, tool calls), tool results, summaries",
        "agents",
        params=(
            _NAME,
            _ID,
            _SESSION,
            Param(
                "after",
                "query",
                {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "default": 0},
                "only messages after this position (the previous page's next_after)",
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 200},
                "at most this many messages",
            ),
        ),
        answers={200: MessageList},
        errors=(404, 422),
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
