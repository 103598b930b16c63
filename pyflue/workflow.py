"""Workflows and their runs: :class:`FlueContext`, :class:`WorkflowDefinition`, :func:`invoke_workflow`.

A workflow is ``async def run(ctx)`` in ``workflows/<name>.py`` of a project. Each invocation is a
*run* with its own id (``workflow:<name>:<ulid>``), its own :class:`~pyflue.events.EventBus` and a
record in the run store. The lifecycle::

    validate payload ─► create record (running) ─► run_start ─► run(ctx) ─► run_end ─► final record
         │ PayloadValidationError: raised, no record        completed | failed | cancelled

The record exists *before* the workflow's code runs (``task_status.started(run_id)`` fires then, so
``await task_group.start(invoke_workflow, ...)`` hands out a run id that is already readable), and
every run reaches a final status: an exception is ``failed``, a cancel request or the workflow's
``timeout`` is ``cancelled``, and a process that dies mid-run leaves a run the store marks
``interrupted``. Every event of the run (agent operations, model calls, tools, tasks, logs) is
written to the store in batches by a flusher task; the last batch and the final record are written
together before :func:`invoke_workflow` returns.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._clock import elapsed_ms
from .agent import AgentDefinition, AgentHarness
from .agent import init as init_agent
from .errors import (
    ConfigError,
    PayloadValidationError,
    ResultNotSerializableError,
    RunCancelledError,
    bounded_traceback,
    error_payload,
)
from .events import BUILTIN_TYPES, Event, EventBus, Observer
from .ids import check_id, new_run_id
from .recording import EventRecorder
from .runtime import current_runtime
from .skills.documents import ProjectDocuments
from .stores.runs import RunRecord, RunStore
from .stores.sessions import SessionStore

__all__ = ["FlueContext", "RunLog", "RunOptions", "WorkflowDefinition", "WorkflowHost", "run_workflow"]

_log = logging.getLogger("pyflue.workflow")

RunFunction = Callable[["FlueContext"], Awaitable[Any]]


def json_data(value: Any) -> Any:
    """``value`` as JSON data (what a payload or a result must be); ``ValueError`` saying why not:
    a cycle, bytes that are not UTF-8, a value JSON has no form for, or a number JSON cannot hold
    (NaN, infinities)."""
    try:
        data = to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError(_first_line(exc)) from None
    try:
        json.dumps(data, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(_first_line(exc)) from None
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class WorkflowDefinition:
    """A workflow as a project defines it: ``run``, an optional ``Payload`` type, a description
    (the module docstring) and an optional ``timeout`` in seconds."""

    __slots__ = ("_adapter", "description", "name", "path", "payload_type", "run", "timeout")

    def __init__(
        self,
        name: str,
        run: RunFunction,
        *,
        payload_type: Any = None,
        description: str | None = None,
        timeout: float | None = None,
        path: Path | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(run):
            raise ConfigError(f"workflow {name!r}: run must be an `async def run(ctx)` function")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise ConfigError(f"workflow {name!r}: timeout must be a number of seconds, got {timeout!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"workflow {name!r}: timeout must be positive, got {timeout!r}")
        self.name = name
        self.run = run
        self.payload_type = payload_type
        self.description = description
        self.timeout = float(timeout) if timeout is not None else None
        self.path = path
        self._adapter: TypeAdapter[Any] | None = (
            TypeAdapter(payload_type) if payload_type is not None else None
        )

    @property
    def payload_schema(self) -> dict[str, Any] | None:
        """The JSON schema of the ``Payload`` type (for HTTP docs and CLI help), or ``None``."""
        return self._adapter.json_schema() if self._adapter is not None else None

    def validate_payload(self, payload: Any) -> tuple[Any, Any]:
        """``(payload as JSON data, typed payload or None)``; ``PayloadValidationError`` when it does
        not fit the ``Payload`` type or is not JSON data. ``None`` means an empty object."""
        if payload is None:
            payload = {}
        if self._adapter is None:
            try:
                return json_data(payload), None
            except ValueError as exc:
                raise PayloadValidationError(
                    f"payload for workflow {self.name!r} is not JSON data: {exc}"
                ) from None
        try:
            typed = self._adapter.validate_python(payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
            )
            raise PayloadValidationError(
                f"payload for workflow {self.name!r} is invalid: {problems}"
            ) from None
        return self._adapter.dump_python(typed, mode="json"), typed

    def __repr__(self) -> str:
        return f"WorkflowDefinition({self.name!r})"


class RunLog:
    """``ctx.log``: each call emits a ``log`` event ``{level, message, fields}`` into the run's log.
    ``fields`` should be JSON data; anything else is stored as its ``repr``."""

    __slots__ = ("_bus",)

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        self._bus.emit("log", {"level": level, "message": str(message), "fields": fields})

    def debug(self, message: str, **fields: Any) -> None:
        self._emit("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._emit("error", message, fields)


class FlueContext:
    """What a workflow's ``run(ctx)`` gets.

    ``run_id``, ``workflow`` (its name), ``payload`` (JSON data: with a ``Payload`` type, the
    validated payload with defaults filled in, so ``ctx.payload["text"]`` works either way),
    ``input`` (the typed ``Payload`` instance, or ``None``), ``env``, ``project``, ``log``,
    :meth:`init` (agents whose events join the run's log), :meth:`emit` (custom events) and
    :meth:`cancel`.
    """

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        payload: Any,
        input: Any,
        env: Mapping[str, str],
        project: WorkflowHost,
        bus: EventBus,
        session_store: SessionStore,
        control: _RunControl,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.payload = payload
        self.input = input
        self.env = env
        self.project = project
        self.bus = bus
        self.log = RunLog(bus)
        self._session_store = session_store
        self._control = control

    async def init(self, agent: AgentDefinition | str, id: str | None = None) -> AgentHarness:
        """An instance of ``agent`` (a definition, or the name of one of the project's agents).

        Its events carry this run's id and are part of the run's log. The instance id defaults
        to the run id, so each run starts with fresh sessions; pass ``id=`` to continue one
        instance's sessions across runs (e.g. per user). Sessions persist in the project's store.
        """
        definition = self.project.agent(agent) if isinstance(agent, str) else agent
        return await init_agent(
            definition,
            id=self.run_id if id is None else id,
            bus=self.bus,
            run_id=self.run_id,
            payload=self.payload,
            session_store=self._session_store,
            env=self.env,
            documents=self.project.documents,
            root=self.project.source,
        )

    def emit(self, type: str, data: dict[str, Any] | None = None) -> Event | None:
        """A custom event in the run's log. Built-in types (``run_start``, ``log``, ...) are refused:
        consumers rely on their shape."""
        if not isinstance(type, str) or not type:
            raise ConfigError(f"event type must be a non-empty string, got {type!r}")
        if type in BUILTIN_TYPES:
            raise ConfigError(f"{type!r} is a built-in event type; name custom events differently")
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"event data must be a dict, got {data.__class__.__name__}")
        return self.bus.emit(type, {} if data is None else data)

    def cancel(self, reason: str = "cancelled by the workflow") -> None:
        """Cancel this run: the workflow's code is cancelled at its next ``await`` and the run
        ends ``cancelled`` with ``reason``."""
        self._control.cancel(reason, "cancelled")

    def __repr__(self) -> str:
        return f"FlueContext({self.run_id!r})"


class _RunControl:
    """The run's cancel scope and why it was cancelled. Cancel requests before the scope exists
    are remembered and applied when it opens."""

    __slots__ = ("kind", "reason", "scope", "thread")

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.reason: str | None = None
        self.kind: str | None = None
        self.thread = threading.get_ident()

    def cancel(self, reason: str, kind: str) -> None:
        if self.reason is None:
            self.reason, self.kind = reason, kind
        if self.scope is not None:
            self.scope.cancel()

    async def poll(self, store: RunStore, run_id: str, interval: float) -> None:
        """Watch the store for a cancel request from any process."""
        while True:
            await anyio.sleep(interval)
            try:
                reason = await store.cancel_requested(run_id)
            except Exception:
                _log.warning("run %s: could not poll for cancel requests", run_id, exc_info=True)
                continue
            if reason:
                self.cancel(reason, "cancel_requested")
                return


def cancel_local(run_id: str, reason: str) -> bool:
    """Cancel a run of this process directly when called from its event loop's thread; False
    when the run is not here (the store's cancel request then reaches it by polling)."""
    control = current_runtime().runs.get(run_id)
    if not isinstance(control, _RunControl) or control.thread != threading.get_ident():
        return False
    control.cancel(reason, "cancel_requested")
    return True


@functools.cache
class WorkflowHost(Protocol):
    """What a run needs of the project it belongs to (:class:`~pyflue.project.Project` is one)."""

    def agent(self, name: str) -> AgentDefinition: ...
    @property
    def run_store(self) -> RunStore: ...
    @property
    def session_store(self) -> SessionStore: ...
    @property
    def documents(self) -> ProjectDocuments: ...
    @property
    def source(self) -> Path: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How one run is made: stores (default: the host's), a live observer, a timeout overriding the
    workflow's own, a chosen run id, the environment its agents see (default ``os.environ``), and
    how often it polls the store for cancel requests from other processes."""

    run_store: RunStore | None = None
    session_store: SessionStore | None = None
    on_event: Observer | None = None
    timeout: float | None = None
    run_id: str | None = None
    env: Mapping[str, str] | None = None
    cancel_poll_interval: float = 0.25


async def run_workflow(
    host: WorkflowHost,
    definition: WorkflowDefinition,
    payload: Any,
    options: RunOptions = RunOptions(),
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> RunRecord:
    """Run ``definition`` with ``payload`` and return its final :class:`RunRecord` (the contract is
    :func:`pyflue.project.invoke_workflow`'s)."""
    data, typed = definition.validate_payload(payload)
    run_id = check_id(options.run_id, "run id") if options.run_id is not None else new_run_id(definition.name)
    limit = options.timeout if options.timeout is not None else definition.timeout
    if limit is not None and limit <= 0:
        raise ConfigError(f"timeout must be positive, got {limit!r}")
    store = options.run_store if options.run_store is not None else host.run_store
    started = time.perf_counter()
    record = RunRecord(
        run_id=run_id,
        workflow=definition.name,
        payload=data,
        started_at=datetime.now(UTC),
        owner_pid=os.getpid(),
        owner_host=socket.gethostname(),
    )
    await store.create_run(record)
    task_status.started(run_id)

    bus = EventBus(run_id=run_id)
    recorder = EventRecorder(functools.partial(store.append_events, run_id), f"run {run_id}")
    bus.subscribe(recorder)
    if options.on_event is not None:
        bus.subscribe(options.on_event)
    control = _RunControl()
    ctx = FlueContext(
        run_id=run_id,
        workflow=definition.name,
        payload=data,
        input=typed,
        env=dict(os.environ) if options.env is None else options.env,
        project=host,
        bus=bus,
        session_store=options.session_store if options.session_store is not None else host.session_store,
        control=control,
    )
    live = current_runtime().runs
    live[run_id] = control
    try:
        async with bus.delivering():
            status, result, error, escaped = await _supervise(
                definition, ctx, control, limit, recorder, store, options.cancel_poll_interval
            )
            with anyio.CancelScope(shield=True):
                duration_ms = elapsed_ms(started)
                end: dict[str, Any] = {"status": status}
                if error is None:
                    end["result"] = result
                else:
                    end["error"] = error
                end.update(duration_ms=duration_ms, usage=recorder.usage.to_dict())
                bus.emit("run_end", end)
                final = record.model_copy(
                    update={
                        "status": status,
                        "result": result,
                        "error": error,
                        "ended_at": datetime.now(UTC),
                        "duration_ms": duration_ms,
                        "usage": recorder.usage,
                    }
                )
                await store.finish_run(final, recorder.take())
    finally:
        live.pop(run_id, None)
        recorder.closed = True
    if escaped is not None:
        raise escaped
    return final


async def _supervise(
    definition: WorkflowDefinition,
    ctx: FlueContext,
    control: _RunControl,
    limit: float | None,
    recorder: EventRecorder,
    store: RunStore,
    poll_interval: float,
) -> tuple[str, Any, dict[str, Any] | None, BaseException | None]:
    """The run's body beside its flusher and cancel poller: ``(status, result, error, escaped)``,
    ``escaped`` being what cancelled the *caller* (re-raised once the run is recorded)."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            tg.start_soon(control.poll, store, ctx.run_id, poll_interval)
            ctx.bus.emit("run_start", {"workflow": definition.name, "payload": ctx.payload})
            status, result, error = await _execute(definition, ctx, control, limit)
            tg.cancel_scope.cancel()
        return status, result, error, None
    except BaseException as exc:  # the caller was cancelled, or KeyboardInterrupt & co.
        reason = (
            "the caller was cancelled"
            if isinstance(exc, anyio.get_cancelled_exc_class())
            else f"interrupted by {type(exc).__name__}"
        )
        return "cancelled", None, {**RunCancelledError(reason).to_dict(), "reason": "caller_cancelled"}, exc


async def _execute(
    definition: WorkflowDefinition, ctx: FlueContext, control: _RunControl, limit: float | None
) -> tuple[str, Any, dict[str, Any] | None]:
    """Run the workflow's code in the run's cancel scope: ``(status, result, error)``. Once the
    scope is cancelled (request, ``ctx.cancel``, timeout) the run is ``cancelled`` even if the code
    raised something else while unwinding; code that swallows the cancellation and returns a value
    completes."""
    failure: Exception | None = None
    with anyio.CancelScope() as scope:
        control.scope = scope
        if control.reason is not None:
            scope.cancel()
        if limit is not None:
            scope.deadline = anyio.current_time() + limit
        try:
            value = await definition.run(ctx)
        except Exception as exc:
            failure = exc
    control.scope = None
    if scope.cancel_called and (scope.cancelled_caught or failure is not None):
        if control.reason is None:
            control.reason, control.kind = (
                f"the run timed out after {limit:g} s (the workflow's timeout)",
                "timeout",
            )
        return "cancelled", None, {**RunCancelledError(control.reason).to_dict(), "reason": control.kind}
    if failure is not None:
        return "failed", None, {**error_payload(failure), "traceback": bounded_traceback(failure)}
    try:
        return "completed", json_data(value), None
    except ValueError as exc:
        error = ResultNotSerializableError(
            f"workflow {definition.name!r} returned a {type(value).__name__}, which is not "
            f"JSON-serialisable ({exc}); return a dict of plain values"
        )
        return "failed", None, error_payload(error)
