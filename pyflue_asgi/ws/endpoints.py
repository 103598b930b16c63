"""The WebSocket endpoints, on the paths of their HTTP routes: ``/agents/{name}/{id}`` takes
``prompt`` messages for that instance, ``/workflows/{name}`` takes ``invoke`` messages that start
runs of that workflow. Both translate to the same core calls as the HTTP routes.

On connect the socket is accepted and gets ``ready``; an agent or workflow that does not exist (or
an invalid instance id, or an app that is not serving) gets an ``error`` and the close code
``4000 + the HTTP status`` instead (4404, 4422, 4503).
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from pyflue import Event, PromptResult, Session, get_run, iter_events
from pyflue.errors import AbortedError
from pyflue.runs import cancel_run

from ..bodies import id_param
from ..errors import ApiError, error_body, public, status_for
from ..routes.agents import model_name, result_body
from ..routes.workflows import record_body
from ..state import ServerState, not_serving
from .connection import Connection, Request, WebSocketOptions
from .protocol import (
    ClientMessage,
    InvokeMessage,
    PromptMessage,
    encode,
    error_message,
    event_message,
    result_message,
    started_message,
)

__all__ = ["socket_routes"]


def socket_routes(state: ServerState, options: WebSocketOptions) -> list[WebSocketRoute]:
    """The app's WebSocket routes."""

    async def agent(websocket: WebSocket) -> None:
        name, instance = websocket.path_params["name"], websocket.path_params["id"]
        await websocket.accept()
        try:
            if not state.serving:
                raise not_serving()
            state.project.agent(name)
            id_param(instance, ("path", "id"))
        except Exception as exc:
            await _refuse(websocket, exc, state.settings.debug)
            return

        def prompt(message: ClientMessage) -> Request:
            assert isinstance(message, PromptMessage)  # the agent socket parses only prompts
            return PromptRequest(message, state, name, instance)

        connection = Connection(websocket, "agent", options, state.settings.debug)
        connection.send({"type": "ready", "target": "agent", "name": name, "instance_id": instance})
        await connection.serve(prompt)

    async def workflow(websocket: WebSocket) -> None:
        name = websocket.path_params["name"]
        await websocket.accept()
        try:
            if not state.serving:
                raise not_serving()
            state.project.workflow(name)
        except Exception as exc:
            await _refuse(websocket, exc, state.settings.debug)
            return

        def invoke(message: ClientMessage) -> Request:
            assert isinstance(message, InvokeMessage)  # the workflow socket parses only invokes
            return InvokeRequest(message, state, name)

        connection = Connection(websocket, "workflow", options, state.settings.debug)
        connection.send({"type": "ready", "target": "workflow", "name": name})
        await connection.serve(invoke)

    return [
        WebSocketRoute("/agents/{name}/{id}", agent, name="agentSocket"),
        WebSocketRoute("/workflows/{name}", workflow, name="workflowSocket"),
    ]


async def _refuse(websocket: WebSocket, exc: Exception, debug: bool) -> None:
    """``error``, then close with 4000 + the status the HTTP API would answer."""
    status = exc.status if isinstance(exc, ApiError) else status_for(exc)
    try:
        await websocket.send_text(encode(error_message(error_body(exc, debug=debug)["error"])))
        await websocket.close(4000 + status if status < 500 or status == 503 else 1011)
    except (WebSocketDisconnect, WebSocketDisconnected, OSError):
        pass  # the client left already


def _event(request_id: str, event: Event, debug: bool) -> dict[str, Any]:
    return event_message(request_id, public(event.model_dump(), debug=debug))


class PromptRequest(Request):
    """A prompt to one session of the socket's instance: it takes its turn on the session like an
    HTTP prompt (``multitask`` as over HTTP), streams the operation's events, then its result.
    ``started`` is sent when the operation starts (it carries the operation id)."""

    def __init__(self, message: PromptMessage, state: ServerState, agent: str, instance: str) -> None:
        super().__init__(message.request_id)
        self.message = message
        self.state = state
        self.agent = agent
        self.instance = instance
        self.session: Session | None = None
        self.operation_id: str | None = None

    async def run(self, connection: Connection) -> None:
        message, state, request_id = self.message, self.state, self.request_id
        debug = state.settings.debug
        with self.scope:
            harness = await state.project.instance(self.agent, self.instance)
            session = await harness.session(message.session)
            key = (self.agent, self.instance, message.session)
            if message.multitask == "reject" and (state.busy(key) or session.operation_id is not None):
                raise ApiError(
                    409,
                    "SessionBusy",
                    f"session {message.session!r} of {self.agent}/{self.instance} is busy; retry later, or "
                    "send multitask enqueue to wait for its turn or interrupt to abort the running prompt",
                )
            model = model_name(harness)
            with state.hold(key):
                self.session = session
                if message.multitask == "interrupt" and session.operation_id is not None:
                    await session.abort("interrupted by a newer prompt")
                async with session.stream(message.message) as items:
                    async for item in items:
                        if isinstance(item, PromptResult):
                            connection.send(result_message(request_id, result_body(item, model)))
                            continue
                        if self.operation_id is None and item.operation_id and item.type == "operation_start":
                            self.operation_id = item.operation_id
                            connection.send(started_message(request_id, operation_id=item.operation_id))
                        connection.send(_event(request_id, item, debug))
            return
        raise AbortedError(f"prompt {request_id!r} was aborted before it started")

    async def abort(self, reason: str) -> None:
        session = self.session
        if self.operation_id is None or session is None:
            self.scope.cancel()  # still waiting: leave the queue
        elif session.operation_id == self.operation_id:
            await session.abort(reason)  # the operation ends `aborted`; the stream raises AbortedError
        # else: the operation has ended, its result is on its way

    async def leave(self, abort_prompts: bool) -> None:
        if abort_prompts:
            await self.abort("the client disconnected")


class InvokeRequest(Request):
    """A run of the socket's workflow. It belongs to the app, not to the socket: ``abort`` cancels
    it, but a client that leaves only stops following it. Its events come from the run store;
    the ``result`` is the final run record, whatever its status."""

    def __init__(self, message: InvokeMessage, state: ServerState, workflow: str) -> None:
        super().__init__(message.request_id)
        self.message = message
        self.state = state
        self.workflow = workflow
        self.run_id: str | None = None
        self._abort: str | None = None

    async def run(self, connection: Connection) -> None:
        state, request_id = self.state, self.request_id
        debug = state.settings.debug
        with anyio.CancelScope(shield=True):  # quick: returns once the run's record exists
            handle = await state.start_run(self.workflow, self.message.payload)
        run_id = self.run_id = handle.run_id
        connection.send(started_message(request_id, run_id=run_id))
        if self._abort is not None:
            await cancel_run(run_id, reason=self._abort, store=state.run_store)
        with self.scope:
            store = state.run_store
            async for event in iter_events(run_id, store=store, poll_interval=state.settings.poll_interval):
                connection.send(_event(request_id, event, debug))
            await handle.done.wait()
            record = handle.record or await get_run(run_id, store=store)
            connection.send(result_message(request_id, record_body(record, debug=debug)))

    async def abort(self, reason: str) -> None:
        if self.run_id is None:
            self._abort = reason  # cancelled as soon as it exists
            return
        await cancel_run(self.run_id, reason=reason, store=self.state.run_store)

    async def leave(self, abort_prompts: bool) -> None:
        self.scope.cancel()  # the run goes on; it stays readable at /runs/{id}
