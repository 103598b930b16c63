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
``interrupted``; so does a process that shuts down in an orderly way (its runtime closing,
``KeyboardInterrupt``, ``SystemExit``, or its owner calling :func:`interrupt_local`): such a run is
recorded ``interrupted`` itself, and a resumable one can be resumed. Every event of the run (agent
operations, model calls, tools, tasks, logs) is written to the store in batches by a flusher task;
the last batch and the final record are written together before :func:`invoke_workflow` returns.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import random as _random
import socket
import threading
import time
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    NotFoundError,
    PayloadValidationError,
    ResultNotSerializableError,
    RunCancelledError,
    bounded_traceback,
    error_payload,
)
from .events import BUILTIN_TYPES, Event, EventBus, Observer
from .ids import check_id, new_run_id
from .journal import RunJournal, is_idempotent
from .recording import EventRecorder
from .runtime import Runtime, current_runtime
from .skills.documents import ProjectDocuments
from .stores.runs import JournalStep, RunJournalStore, RunRecord, RunStore, interrupted_error
from .stores.sessions import SessionStore

__all__ = [
    "FlueContext",
    "RunLog",
    "RunOptions",
    "WorkflowDefinition",
    "WorkflowHost",
    "continue_run",
    "interrupt_local",
    "resumable_journal",
    "run_workflow",
]

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
    (the module docstring), an optional ``timeout`` in seconds, and whether its runs are
    ``resumable`` (journaled, see :mod:`pyflue.journal`). ``resumable=None`` reads a module-level
    ``resumable = True`` beside ``run``."""

    __slots__ = ("_adapter", "description", "name", "path", "payload_type", "resumable", "run", "timeout")

    def __init__(
        self,
        name: str,
        run: RunFunction,
        *,
        payload_type: Any = None,
        description: str | None = None,
        timeout: float | None = None,
        path: Path | None = None,
        resumable: bool | None = None,
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
        if resumable is None:
            resumable = getattr(run, "__globals__", {}).get("resumable", False)
        if not isinstance(resumable, bool):
            raise ConfigError(f"workflow {name!r}: resumable must be True or False, got {resumable!r}")
        self.resumable = resumable
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
        journal: RunJournal | None = None,
        instance_id: str | None = None,
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
        self._journal = journal
        self._instance_id = run_id if instance_id is None else instance_id

    async def init(self, agent: AgentDefinition | str, id: str | None = None) -> AgentHarness:
        """An instance of ``agent`` (a definition, or the name of one of the project's agents).

        Its events carry this run's id and are part of the run's log. The instance id defaults
        to the run id, so each run starts with fresh sessions; pass ``id=`` to continue one
        instance's sessions across runs (e.g. per user). Sessions persist in the project's store.
        A resumed run's default instance is ``<run id>.r<attempt>``: its sessions are rebuilt from
        the journal instead of continuing the interrupted attempt's half-written ones.
        """
        definition = self.project.agent(agent) if isinstance(agent, str) else agent
        return await init_agent(
            definition,
            id=self._instance_id if id is None else id,
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

    async def step(self, name: str, fn: Callable[[], Any], *, idempotent: bool = False) -> Any:
        """``fn()`` (sync or async, no arguments) as a step of the run: its result in JSON form.

        In a resumable run the result is journaled, so a resumed run gets the recorded result
        without calling ``fn`` again: put side effects and non-deterministic code of your own here.
        If the run's process died while ``fn`` ran, a resumed run raises
        :class:`~pyflue.journal.StepOutcomeUnknownError` here, unless ``idempotent=True`` (or ``fn``
        is marked with :func:`~pyflue.journal.idempotent`), which calls ``fn`` again."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a step's name must be a non-empty string, got {name!r}")

        async def live() -> Any:
            value = fn()
            if inspect.isawaitable(value):
                value = await value
            try:
                return json_data(value)
            except ValueError as exc:
                raise ResultNotSerializableError(
                    f"step {name!r} returned a {type(value).__name__}, which is not JSON data ({exc}); "
                    "return plain values"
                ) from None

        journal = self._journal
        if journal is None:
            return await live()
        (key,) = journal.keys()
        retry = idempotent or is_idempotent(fn)
        return await journal.run(key, "step", name, "", live, mark_start=True, retry_unknown=retry)

    async def _value(self, kind: str, make: Callable[[], Any]) -> Any:
        journal = self._journal
        if journal is None:
            return make()

        async def live() -> Any:
            return make()

        (key,) = journal.keys()
        return await journal.run(key, kind, kind, "", live, mark_start=False, retry_unknown=True)

    async def now(self) -> datetime:
        """The current time (UTC); a resumed run gets the time the first attempt saw."""
        return datetime.fromisoformat(await self._value("now", lambda: datetime.now(UTC).isoformat()))

    async def uuid(self) -> _uuid.UUID:
        """A random UUID (version 4); a resumed run gets the one the first attempt made."""
        return _uuid.UUID(await self._value("uuid", lambda: str(_uuid.uuid4())))

    async def random(self) -> float:
        """A random float in [0, 1); a resumed run gets the one the first attempt drew."""
        return float(await self._value("random", _random.random))

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
                reason = await store.heartbeat(run_id)
            except Exception:
                _log.warning("run %s: could not poll for cancel requests", run_id, exc_info=True)
                continue
            if reason:
                self.cancel(reason, "cancel_requested")
                return


#: The kind of cancel that says the process is shutting down: the run ends ``interrupted``.
_SHUTDOWN = "shutdown"


def interrupt_local(run_id: str) -> bool:
    """End a run of this process ``interrupted`` (as if its process had stopped) rather than
    ``cancelled``: what an owner that stops because the process shuts down does to the runs it
    started (a resumable one can then be resumed elsewhere or after a restart). Called from the
    run's event loop's thread; False when the run is not here."""
    control = current_runtime().runs.get(run_id)
    if not isinstance(control, _RunControl) or control.thread != threading.get_ident():
        return False
    control.cancel("the process is shutting down", _SHUTDOWN)
    return True


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
    def workflow(self, name: str) -> WorkflowDefinition: ...
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
    workflow's own, a chosen run id, the environment its agents see (default ``os.environ``), how
    often it polls the store for cancel requests from other processes, and whether it is resumable
    (``None``: as the workflow says)."""

    run_store: RunStore | None = None
    session_store: SessionStore | None = None
    on_event: Observer | None = None
    timeout: float | None = None
    run_id: str | None = None
    env: Mapping[str, str] | None = None
    cancel_poll_interval: float = 0.25
    resumable: bool | None = None


def _journal_store(store: RunStore) -> RunJournalStore:
    if not isinstance(store, RunJournalStore):
        raise ConfigError(
            f"resumable runs need a run store that keeps a journal; {type(store).__name__} does not "
            "(the SQLite and memory run stores do)"
        )
    return store


#: The journal entry that marks a run as resumable (written when the run is created).
_RUN_STEP = "run"


def resumable_journal(steps: Sequence[JournalStep]) -> bool:
    """Whether a run's journal is a resumable run's (it holds the mark written at its creation)."""
    return any(step.step == _RUN_STEP for step in steps)


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
    store = options.run_store if options.run_store is not None else host.run_store
    resumable = definition.resumable if options.resumable is None else options.resumable
    journal_store = _journal_store(store) if resumable else None
    limit = _limit(definition, options)
    record = RunRecord(
        run_id=run_id,
        workflow=definition.name,
        payload=data,
        started_at=datetime.now(UTC),
        owner_pid=os.getpid(),
        owner_host=socket.gethostname(),
    )
    await store.create_run(record)
    journal = None
    if journal_store is not None:
        await journal_store.record_step(
            run_id, JournalStep(_RUN_STEP, -1, "run", definition.name, "", "done", None)
        )
        journal = RunJournal(journal_store, run_id)
    task_status.started(run_id)
    return await _run(host, definition, record, typed, options, store, limit, journal, None)


async def continue_run(
    host: WorkflowHost,
    run_id: str,
    *,
    run_store: RunStore | None = None,
    session_store: SessionStore | None = None,
    on_event: Observer | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cancel_poll_interval: float = 0.25,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> RunRecord:
    """Continue the ``interrupted`` resumable run ``run_id`` in this process; its final record.

    The workflow's ``run(ctx)`` runs again with the run's payload and id; every step its journal
    holds returns its recorded result (no model request, no tool call), and the run goes on live
    from the first step the journal does not hold. The log gets a ``run_resume`` event (attempt
    number and journaled steps) and, at the end, a ``run_end`` like any run's; the record goes from
    ``interrupted`` to the final status. ``NotFoundError``: no such run; ``ConfigError``: the run is
    not interrupted, was not resumable, or the store keeps no journal; a run whose code asks for a
    different step than the journal holds ends ``failed`` with ``ResumeDivergedError``.
    """
    store = run_store if run_store is not None else host.run_store
    journal_store = _journal_store(store)
    check_id(run_id, "run id")
    found = await store.get_run(run_id)
    if found is None:
        raise NotFoundError(f"no run {run_id!r}; list runs with `pyflue runs`")
    steps = await journal_store.read_journal(run_id)
    if not resumable_journal(steps):
        raise ConfigError(
            f"run {run_id!r} was not resumable (it kept no journal); only runs of workflows with "
            "`resumable = True` (or started with resumable=True) can be resumed"
        )
    definition = host.workflow(found.workflow)
    _, typed = definition.validate_payload(found.payload)
    options = RunOptions(
        run_store=store,
        session_store=session_store,
        on_event=on_event,
        timeout=timeout,
        run_id=run_id,
        env=env,
        cancel_poll_interval=cancel_poll_interval,
        resumable=True,
    )
    limit = _limit(definition, options)
    previous = await store.read_events(run_id)
    record = await journal_store.reopen_run(run_id, os.getpid(), socket.gethostname())
    journal = RunJournal(journal_store, run_id, [step for step in steps if step.step != _RUN_STEP])
    attempt = 1 + sum(1 for event in previous if event.type == "run_resume")
    task_status.started(run_id)
    resume = _Resume(attempt, previous[-1].seq if previous else 0)
    return await _run(host, definition, record, typed, options, store, limit, journal, resume)


@dataclass(frozen=True, slots=True)
class _Resume:
    """What a resumed attempt continues from: its number and the log's last ``seq``."""

    attempt: int
    last_seq: int


def _limit(definition: WorkflowDefinition, options: RunOptions) -> float | None:
    limit = options.timeout if options.timeout is not None else definition.timeout
    if limit is not None and limit <= 0:
        raise ConfigError(f"timeout must be positive, got {limit!r}")
    return limit


async def _run(
    host: WorkflowHost,
    definition: WorkflowDefinition,
    record: RunRecord,
    typed: Any,
    options: RunOptions,
    store: RunStore,
    limit: float | None,
    journal: RunJournal | None,
    resume: _Resume | None,
) -> RunRecord:
    """A run from its record to its final record: the body shared by new and resumed runs."""
    run_id = record.run_id
    started = time.perf_counter()
    bus = EventBus(run_id=run_id)
    if resume is not None:
        bus.seq = resume.last_seq  # the resumed attempt's events follow the earlier ones
    recorder = EventRecorder(functools.partial(store.append_events, run_id), f"run {run_id}")
    bus.subscribe(recorder)
    if journal is not None:
        journal.record_events(recorder)
    if options.on_event is not None:
        bus.subscribe(options.on_event)
    control = _RunControl()
    ctx = FlueContext(
        run_id=run_id,
        workflow=definition.name,
        payload=record.payload,
        input=typed,
        env=dict(os.environ) if options.env is None else options.env,
        project=host,
        bus=bus,
        session_store=options.session_store if options.session_store is not None else host.session_store,
        control=control,
        journal=journal,
        instance_id=None if resume is None else f"{run_id}.r{resume.attempt}",
    )
    if resume is not None and journal is not None:
        bus.emit("run_resume", {"attempt": resume.attempt, "journaled_steps": journal.recorded_count})
    runtime = current_runtime()
    live = runtime.runs
    live[run_id] = control
    try:
        async with bus.delivering():
            status, result, error, escaped = await _supervise(
                definition, ctx, control, limit, recorder, store, options.cancel_poll_interval, runtime
            )
            with anyio.CancelScope(shield=True):
                duration_ms = elapsed_ms(started) + (record.duration_ms or 0.0)
                usage = recorder.usage if resume is None else record.usage + recorder.usage
                end: dict[str, Any] = {"status": status}
                if error is None:
                    end["result"] = result
                else:
                    end["error"] = error
                end.update(duration_ms=duration_ms, usage=usage.to_dict())
                if journal is not None and resume is not None:
                    end["replayed_steps"] = journal.replayed
                bus.emit("run_end", end)
                final = record.model_copy(
                    update={
                        "status": status,
                        "result": result,
                        "error": error,
                        "ended_at": datetime.now(UTC),
                        "duration_ms": duration_ms,
                        "usage": usage,
                        "owner_pid": os.getpid(),
                        "owner_host": socket.gethostname(),
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
    runtime: Runtime,
) -> tuple[str, Any, dict[str, Any] | None, BaseException | None]:
    """The run's body beside its flusher and cancel poller: ``(status, result, error, escaped)``,
    ``escaped`` being what cancelled the *caller* (re-raised once the run is recorded).

    A caller cancelled while ``runtime`` is closing, ``KeyboardInterrupt``, ``SystemExit`` and the
    like end the run ``interrupted`` (the process stopped it, as if it had died); a caller cancelled
    otherwise (a task cancelling ``invoke_workflow``) ends it ``cancelled``."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            tg.start_soon(control.poll, store, ctx.run_id, poll_interval)
            ctx.bus.emit("run_start", {"workflow": definition.name, "payload": ctx.payload})
            status, result, error = await _execute(definition, ctx, control, limit)
            tg.cancel_scope.cancel()
        return status, result, error, None
    except BaseException as exc:  # the caller was cancelled, or KeyboardInterrupt & co.
        if control.reason is not None and control.kind != _SHUTDOWN:  # a request came first: it wins
            return (
                "cancelled",
                None,
                {**RunCancelledError(control.reason).to_dict(), "reason": control.kind},
                exc,
            )
        shutdown = runtime.closing or control.kind == _SHUTDOWN
        if isinstance(exc, anyio.get_cancelled_exc_class()) and not shutdown:
            error = {**RunCancelledError("the caller was cancelled").to_dict(), "reason": "caller_cancelled"}
            return "cancelled", None, error, exc
        return "interrupted", None, _interrupted(), exc


def _interrupted() -> dict[str, Any]:
    """The error of a run this process stopped as it shut down: a dead owner's (the store's own)."""
    return interrupted_error(os.getpid(), socket.gethostname())


@contextmanager
def _journaling(journal: RunJournal | None) -> Iterator[None]:
    if journal is None:
        yield
        return
    with journal.active():
        yield


async def _execute(
    definition: WorkflowDefinition, ctx: FlueContext, control: _RunControl, limit: float | None
) -> tuple[str, Any, dict[str, Any] | None]:
    """Run the workflow's code in the run's cancel scope: ``(status, result, error)``. Once the
    scope is cancelled (request, ``ctx.cancel``, timeout) the run is ``cancelled`` even if the code
    raised something else while unwinding (``interrupted`` when the cancel was the process shutting
    down, :func:`interrupt_local`); code that swallows the cancellation and returns a value
    completes."""
    failure: Exception | None = None
    with anyio.CancelScope() as scope:
        control.scope = scope
        if control.reason is not None:
            scope.cancel()
        if limit is not None:
            scope.deadline = anyio.current_time() + limit
        try:
            with _journaling(ctx._journal):
                value = await definition.run(ctx)
            if ctx._journal is not None:
                ctx._journal.check_finished()
        except Exception as exc:
            failure = exc
        if ctx._journal is not None and ctx._journal.diverged is not None:
            failure = ctx._journal.diverged  # even when the code caught it: never a silent mix
    control.scope = None
    if scope.cancel_called and (scope.cancelled_caught or failure is not None):
        if control.kind == _SHUTDOWN:
            return "interrupted", None, _interrupted()
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
