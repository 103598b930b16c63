"""Durable dispatch: input accepted for an agent is never lost, runs in order, and its outcome is kept.

``await dispatch(agent, id=..., input=...)`` returns a :class:`DispatchReceipt` only after the input
is committed to the dispatch store (SQLite in the project's ``.pyflue/pyflue.db`` by default). A
:class:`Dispatcher` delivers it: an operation of kind ``dispatch`` on that instance's session, in
strict order per (agent, instance, session), taking turns with direct prompts to the same session;
distinct sessions run concurrently up to ``concurrency``. Agent interactions are not runs: a
delivery has its own event log (``iter_dispatch_events``), not a run record.

Guarantees:

- **Durable before the receipt.** An exception inside :func:`dispatch` leaves nothing queued.
- **At-least-once, every attempt recorded.** A worker holds each item with a lease it renews while
  it works; a worker killed with ``kill -9`` leaves a lease that expires in ``lease_seconds`` (10 s by
  default), and another worker takes the item over. A retry sees what the previous attempt got
  through (the session history): tool calls are stored before their tools run, and a call that
  started without a recorded result gets an "outcome unknown" error result instead of running again.
- **Poison input ends.** After ``max_attempts`` (default 3; exponential backoff between them) the item
  ends ``failed`` with its typed error and the session's next item proceeds.
- **Cancel one item.** :func:`cancel_dispatch` cancels that item only: queued, it is never
  delivered; running, its operation is cancelled; the session's other work goes on.

Trace context: when OpenTelemetry is in use, the caller's current span is stored with the item (as a
W3C ``traceparent``) and the delivery's spans join that trace.
"""

from __future__ import annotations

import builtins
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic_core import to_jsonable_python

from .agent import AgentDefinition, AgentHarness, init
from .errors import ConfigError, NotFoundError, PyFlueError, UnknownAgentError, error_payload, shown
from .events import Event, EventBus
from .ids import check_id, new_operation_id, new_ulid
from .models.messages import TextPart, parts_from_json, parts_to_json, user_parts
from .project import DB_PATH, Project
from .recording import EventRecorder
from .runtime import current_runtime
from .session import PromptResult
from .stores.dispatches import (
    FINAL_STATUSES,
    DispatchOutcome,
    DispatchPage,
    DispatchRecord,
    DispatchStore,
)
from .stores.liveness import hostname
from .stores.sessions import SessionStore

__all__ = [
    "DispatchReceipt",
    "Dispatcher",
    "cancel_dispatch",
    "dispatch",
    "dispatch_store",
    "get_dispatch",
    "iter_dispatch_events",
    "list_dispatches",
    "wait_dispatch",
]

_log = logging.getLogger("pyflue.dispatch")


@dataclass(frozen=True, slots=True)
class DispatchReceipt:
    """Proof that input was accepted: it is in the store, and will be delivered."""

    dispatch_id: str
    agent: str
    instance_id: str
    session_id: str
    accepted_at: datetime
    status: str

    @classmethod
    def of(cls, record: DispatchRecord) -> DispatchReceipt:
        return cls(
            record.dispatch_id,
            record.agent,
            record.instance_id,
            record.session_id,
            record.accepted_at,
            record.status,
        )


def dispatch_store(project: Project | str | os.PathLike[str] | None = None) -> DispatchStore:
    """The dispatch store of ``project`` (a :class:`Project` or its directory; default: the current
    directory): SQLite in its ``.pyflue/pyflue.db``, or the PostgreSQL database the runtime names
    (``PYFLUE_DATABASE_URL``); one store object per runtime."""
    root = project.path if isinstance(project, Project) else Path.cwd() if project is None else Path(project)
    return current_runtime().dispatch_store_for(root / DB_PATH)


def _store(store: DispatchStore | None, project: Project | str | os.PathLike[str] | None) -> DispatchStore:
    return store if store is not None else dispatch_store(project)


async def dispatch(
    agent: AgentDefinition | str,
    *,
    id: str,
    input: str | list[Any],
    session: str = "default",
    key: str | None = None,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
    max_attempts: int = 3,
) -> DispatchReceipt:
    """Accept ``input`` for ``agent``'s instance ``id`` (session ``session``), durably: the receipt
    returns after the commit. ``agent`` is an agent definition (with a name) or the name of one of
    ``project``'s agents (``NotFoundError`` lists them). ``key`` makes it idempotent: the same key
    for the same target returns the first receipt and enqueues nothing (another target:
    ``ConfigError``)."""
    name = _agent_name(agent, project)
    check_id(id, "instance id")
    check_id(session, "session id")
    parts = user_parts(input)
    if not any(not isinstance(part, TextPart) or part.text.strip() for part in parts):
        raise ConfigError("dispatch: the input is empty; send some text or an image")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(f"max_attempts must be at least 1, got {max_attempts!r}")
    record = DispatchRecord(
        agent=name,
        instance_id=id,
        session_id=session,
        input=input if isinstance(input, str) else parts_to_json(parts),
        key=key,
        max_attempts=max_attempts,
        traceparent=_traceparent(),
    )
    stored = await _store(store, project).enqueue(record)
    EventBus().emit(
        "dispatch_accepted",
        {"dispatch_id": stored.dispatch_id, "attempt": 0, "key": key},
        agent=name,
        instance_id=id,
        session_id=session,
    )
    return DispatchReceipt.of(stored)


def _agent_name(agent: AgentDefinition | str, project: Project | str | os.PathLike[str] | None) -> str:
    if isinstance(agent, AgentDefinition):
        if not agent.name:
            raise ConfigError(
                "dispatch needs a named agent: create_agent(..., name='...'), or an agent of a project"
            )
        return agent.name
    if not isinstance(agent, str):
        raise ConfigError(
            f"dispatch expects an agent definition or an agent name, got {type(agent).__name__}"
        )
    loaded = project if isinstance(project, Project) else Project.load(project or ".")
    if agent not in loaded.agents:
        available = ", ".join(sorted(loaded.agents)) or "none"
        raise NotFoundError(f"no agent named {shown(agent)} in {loaded.path}; available: {available}")
    return agent


async def get_dispatch(
    dispatch_id: str,
    *,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
) -> DispatchRecord:
    """The dispatch's record (status, attempts, outcome); ``NotFoundError`` when there is none."""
    record = await _store(store, project).get(dispatch_id)
    if record is None:
        raise NotFoundError(f"no dispatch {shown(dispatch_id)}")
    return record


async def list_dispatches(
    *,
    agent: str | None = None,
    id: str | None = None,
    session: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
) -> DispatchPage:
    """Dispatches newest first, filtered; ``page.next_cursor`` continues the listing."""
    return await _store(store, project).list(
        agent=agent, instance_id=id, session_id=session, status=status, limit=limit, cursor=cursor
    )


async def wait_dispatch(
    dispatch_id: str,
    timeout: float | None = None,
    *,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
    poll_interval: float = 1.0,
) -> DispatchRecord:
    """Wait until the dispatch is ``delivered``, ``failed`` or ``cancelled`` (from any process) and
    return its record; ``TimeoutError`` after ``timeout`` seconds. The store's watch of the dispatch
    wakes the wait when its status is committed (PostgreSQL: ``NOTIFY`` from any host; SQLite: at
    once for this process's writes, within its poll for others); ``poll_interval`` bounds how long
    it goes without reading the record regardless."""
    source = _store(store, project)
    with anyio.fail_after(timeout):
        async with await source.watch(dispatch_id) as watch:
            while True:
                record = await get_dispatch(dispatch_id, store=source)
                if record.status in FINAL_STATUSES:
                    return record
                await watch.wait(poll_interval)


async def cancel_dispatch(
    dispatch_id: str,
    reason: str = "cancelled by request",
    *,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
) -> DispatchRecord:
    """Cancel one dispatched input: queued, it is never delivered; running, its operation is
    cancelled by the worker delivering it (wherever it runs); finished, nothing changes. Nothing
    else of the instance or session is touched."""
    record = await _store(store, project).cancel(dispatch_id, reason)
    if record is None:
        raise NotFoundError(f"no dispatch {shown(dispatch_id)}")
    return record


async def iter_dispatch_events(
    dispatch_id: str,
    *,
    after_seq: int = 0,
    follow: bool = False,
    project: Project | str | os.PathLike[str] | None = None,
    store: DispatchStore | None = None,
    poll_interval: float = 1.0,
) -> AsyncIterator[Event]:
    """The events of the dispatch's deliveries (every attempt), in order; with ``follow``, keep
    waiting for new ones until the dispatch is finished (woken by the store's watch, reading at
    least every ``poll_interval`` seconds)."""
    source = _store(store, project)
    await get_dispatch(dispatch_id, store=source)
    if not follow:
        for event in await source.read_events(dispatch_id, after_seq=after_seq):
            yield event
        return
    seq = after_seq
    async with await source.watch(dispatch_id) as watch:
        while True:
            finished = (await get_dispatch(dispatch_id, store=source)).status in FINAL_STATUSES
            events = await source.read_events(dispatch_id, after_seq=seq)
            for event in events:
                seq = event.seq
                yield event
            if finished and not events:
                return
            if not events:
                await watch.wait(poll_interval)


# -- the worker ------------------------------------------------------------------------------------


class Dispatcher:
    """Delivers dispatched input; ``async with Dispatcher(project) as worker:`` runs it inside any
    async program (``pyflue worker`` runs one as a process; the HTTP server, in its lifespan).

    ``project`` resolves agent names (or ``agents={name: definition}`` for agents outside a project)
    and gives the stores; ``concurrency`` bounds deliveries in flight (one per session at a time);
    ``lease_seconds`` is how soon another worker takes over from one that died; failed attempts are
    retried after ``backoff * 2**(attempt-1)`` seconds (at most ``max_backoff``). Leaving the block
    stops claiming, gives deliveries in flight ``grace_period`` seconds, then cancels them (their
    items are delivered again by a worker, as after a crash).
    """

    def __init__(
        self,
        project: Project | str | os.PathLike[str] | None = None,
        *,
        agents: Mapping[str, AgentDefinition] | None = None,
        store: DispatchStore | None = None,
        session_store: SessionStore | None = None,
        concurrency: int = 4,
        lease_seconds: float = 10.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        poll_interval: float = 0.5,
        grace_period: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency!r}")
        if not lease_seconds > 0 or backoff < 0 or max_backoff < 0 or not poll_interval > 0:
            raise ConfigError("lease_seconds and poll_interval must be positive, backoffs not negative")
        self.project = project if isinstance(project, Project) or project is None else Project.load(project)
        self._agents = dict(agents or {})
        self._store = store
        self._session_store = session_store
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.grace_period = grace_period
        #: This worker's name in leases and attempts: host, process and a unique suffix.
        self.worker = f"{hostname()}:{os.getpid()}:{new_ulid()}"
        self._running: dict[str, anyio.CancelScope] = {}
        self._slot = anyio.Event()
        self._group: TaskGroup | None = None
        self._claiming: anyio.CancelScope | None = None
        self._stopping = False

    @property
    def store(self) -> DispatchStore:
        if self._store is None:
            self._store = dispatch_store(self.project)
        return self._store

    @property
    def session_store(self) -> SessionStore:
        if self._session_store is None:
            self._session_store = (
                self.project.session_store if self.project is not None else current_runtime().session_store
            )
        return self._session_store

    @property
    def running(self) -> int:
        """Deliveries in flight now."""
        return len(self._running)

    async def __aenter__(self) -> Dispatcher:
        self.store  # noqa: B018 - open the stores before claiming, in the caller's runtime
        self.session_store  # noqa: B018
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._claim_loop)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group = self._group
        assert group is not None
        self._stopping = True
        if self._claiming is not None:
            self._claiming.cancel()
        with anyio.move_on_after(self.grace_period, shield=True):
            while self._running:
                self._slot = anyio.Event()
                await self._slot.wait()
        group.cancel_scope.cancel()
        try:
            return await group.__aexit__(exc_type, exc, tb)
        finally:
            self._group = None

    async def serve(self) -> None:
        """Deliver until cancelled (what ``pyflue worker`` runs)."""
        async with self:
            await anyio.sleep_forever()

    # -- claiming ----------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        with anyio.CancelScope() as self._claiming:
            while True:
                free = self.concurrency - len(self._running)
                claimed: builtins.list[DispatchRecord] = []
                if free > 0:
                    try:
                        claimed = await self.store.claim(self.worker, self.lease_seconds, free)
                    except PyFlueError:
                        _log.warning("could not claim dispatched input; retrying", exc_info=True)
                        await anyio.sleep(self.poll_interval)
                        continue
                    if self._stopping:  # claimed as the worker stopped: hand the items back
                        await self._hand_back(claimed)
                        return
                    for record in claimed:
                        scope = anyio.CancelScope()
                        self._running[record.dispatch_id] = scope
                        assert self._group is not None
                        self._group.start_soon(self._deliver, record, scope)
                if not claimed:
                    await self._wait()

    async def _hand_back(self, records: builtins.list[DispatchRecord]) -> None:
        with anyio.CancelScope(shield=True):
            for record in records:
                error = {
                    "type": "WorkerStopped",
                    "message": f"worker {self.worker} stopped before starting it",
                }
                await self.store.fail(record.dispatch_id, self.worker, error, 0.0)

    async def _wait(self) -> None:
        """Until the store changed, a slot freed, or the poll interval passed."""
        slot = self._slot = anyio.Event() if self._slot.is_set() else self._slot
        async with anyio.create_task_group() as tg:

            async def changed() -> None:
                await self.store.wait_changed(self.poll_interval)
                tg.cancel_scope.cancel()

            async def freed() -> None:
                await slot.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(changed)
            if len(self._running) >= self.concurrency:
                tg.start_soon(freed)

    # -- delivering --------------------------------------------------------------------------------

    async def _deliver(self, record: DispatchRecord, scope: anyio.CancelScope) -> None:
        try:
            async with anyio.create_task_group() as tg:
                cancel = _Cancel()
                tg.start_soon(self._keep_lease, record.dispatch_id, scope, cancel)
                await self._attempt(record, scope, cancel)
                tg.cancel_scope.cancel()
        except Exception:
            _log.exception("dispatch %s: the delivery could not be recorded", record.dispatch_id)
        finally:
            self._running.pop(record.dispatch_id, None)
            self._slot.set()

    async def _keep_lease(self, dispatch_id: str, scope: anyio.CancelScope, cancel: _Cancel) -> None:
        """Renew the lease every third of it; cancel the delivery when a cancel is requested or the
        lease was lost (another worker took the item over)."""
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            try:
                held = await self.store.renew(dispatch_id, self.worker, self.lease_seconds)
                record = await self.store.get(dispatch_id) if held else None
            except PyFlueError:
                _log.warning("dispatch %s: could not renew its lease", dispatch_id, exc_info=True)
                continue
            if not held:
                cancel.why = "lost"
                scope.cancel()
                return
            if record is not None and record.cancel_requested:
                cancel.why = "cancelled"
                scope.cancel()
                return

    async def _attempt(self, record: DispatchRecord, scope: anyio.CancelScope, cancel: _Cancel) -> None:
        store = self.store
        dispatch_id = record.dispatch_id
        target = {"agent": record.agent, "instance_id": record.instance_id, "session_id": record.session_id}
        stored = await store.read_events(dispatch_id)
        bus = EventBus()
        bus.seq = stored[-1].seq if stored else 0  # one seq sequence across attempts
        recorder = EventRecorder(
            functools.partial(store.append_events, dispatch_id), f"dispatch {dispatch_id}"
        )
        bus.subscribe(recorder)
        operation_id = new_operation_id()
        info = {"dispatch_id": dispatch_id, "attempt": record.attempts, "operation_id": operation_id}
        result: PromptResult | None = None
        failure: BaseException | None = None
        with _trace_context(record.traceparent):
            async with bus.delivering(), anyio.create_task_group() as flusher:
                flusher.start_soon(recorder.run)
                bus.emit("dispatch_started", dict(info), **target)
                if record.cancel_requested:
                    cancel.why = "cancelled"
                else:
                    with scope:
                        try:
                            harness = await self._instance(record, bus)
                            session = await harness.session(record.session_id)
                            result = await harness.operate(
                                session, "dispatch", _input(record.input), operation_id=operation_id
                            )
                        except Exception as exc:
                            failure = exc
                flusher.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._finish(record, bus, recorder, info, target, result, failure, cancel)

    async def _finish(
        self,
        record: DispatchRecord,
        bus: EventBus,
        recorder: EventRecorder,
        info: dict[str, Any],
        target: dict[str, str],
        result: PromptResult | None,
        failure: BaseException | None,
        cancel: _Cancel,
    ) -> None:
        store, dispatch_id = self.store, record.dispatch_id
        if cancel.why == "lost":
            _log.warning(
                "dispatch %s: its lease was taken over; this attempt's outcome is not kept", dispatch_id
            )
            await store.append_events(dispatch_id, recorder.take())
            return
        if result is not None:
            outcome = DispatchOutcome(
                operation_id=result.operation_id,
                text=result.text,
                output=to_jsonable_python(result.output, fallback=str),
                usage=result.usage.to_dict(),
            )
            bus.emit("dispatch_delivered", {**info, "usage": result.usage.to_dict()}, **target)
            await store.append_events(dispatch_id, recorder.take())
            await store.complete(dispatch_id, self.worker, outcome)
        elif cancel.why == "cancelled":
            bus.emit(
                "dispatch_cancelled", {**info, "reason": record.cancel_requested or "cancelled"}, **target
            )
            await store.append_events(dispatch_id, recorder.take())
            await store.finish_cancelled(dispatch_id, self.worker)
        else:
            error = (
                error_payload(failure)
                if failure is not None
                else {"type": "Cancelled", "message": "cancelled"}
            )
            retry = self._retry_after(record, failure)
            bus.emit("dispatch_failed", {**info, "error": error, "will_retry": retry is not None}, **target)
            await store.append_events(dispatch_id, recorder.take())
            await store.fail(dispatch_id, self.worker, error, retry)

    def _retry_after(self, record: DispatchRecord, failure: BaseException | None) -> float | None:
        """Seconds until the next attempt, or None when the item should end now: attempts used up,
        or an error no retry can fix (the agent or its config is wrong)."""
        if record.attempts >= record.max_attempts or isinstance(failure, ConfigError):
            return None
        return float(min(self.max_backoff, self.backoff * 2.0 ** (record.attempts - 1)))

    async def _instance(self, record: DispatchRecord, bus: EventBus) -> AgentHarness:
        """A fresh instance per delivery, on the delivery's own bus (its events are its log); its
        sessions share the live history of the stored session with every other harness."""
        definition = self._agents.get(record.agent)
        if definition is None:
            if self.project is None:
                known = ", ".join(sorted(self._agents)) or "none"
                raise UnknownAgentError(
                    f"no agent named {shown(record.agent)} in this worker; available: {known}"
                )
            definition = self.project.agent(record.agent)
        return await init(definition, id=record.instance_id, session_store=self.session_store, bus=bus)


class _Cancel:
    """Why a delivery's scope was cancelled: ``"cancelled"`` (a cancel request) or ``"lost"`` (the
    lease was taken over); ``None`` when it was not."""

    __slots__ = ("why",)

    def __init__(self) -> None:
        self.why: str | None = None


def _input(value: str | Sequence[dict[str, Any]]) -> str | list[Any]:
    return value if isinstance(value, str) else list(parts_from_json(list(value)))


# -- trace context (OpenTelemetry, when in use) ----------------------------------------------------


def _traceparent() -> str | None:
    """The caller's current span as a W3C ``traceparent``, when OpenTelemetry is loaded."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@contextmanager
def _trace_context(traceparent: str | None) -> Iterator[None]:
    """Make the stored ``traceparent`` the current span context, so the delivery's spans join the
    dispatching caller's trace."""
    if traceparent is None:
        yield
        return
    try:
        from opentelemetry import context, trace
    except ImportError:
        yield
        return
    try:
        _, trace_id, span_id, flags = traceparent.split("-")
        span = trace.NonRecordingSpan(
            trace.SpanContext(int(trace_id, 16), int(span_id, 16), True, trace.TraceFlags(int(flags, 16)))
        )
    except ValueError:
        yield
        return
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)
