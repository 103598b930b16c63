"""Sessions: one conversation of an agent instance, and the lifecycle every operation on it shares.

Operations on one session (prompts, streams, tasks, compactions, dispatched input) run one at a time
in arrival order (a FIFO turn shared by every harness of the process, :mod:`pyflue._gates`);
different sessions run concurrently. Each is an *operation* with its own id: it waits its turn,
emits ``operation_start`` / ``operation_end``, and ``abort()`` cancels the one in flight on this
session only (queued operations go on), leaving the history consistent.

A session does not know how to prompt: the agent instance that owns it (its *harness*, the
:class:`SessionOwner`) runs the turn loop, tasks and compaction on it. That keeps this module below
them: they use a session's history and operation lifecycle, and the session hands work up to its
owner through that declared protocol.
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from ._clock import elapsed_ms
from .errors import AbortedError, ConfigError, error_payload
from .events import Event, EventBus, reset_sink, set_sink
from .history import History
from .ids import new_operation_id
from .model_calls import Emit
from .models.base import Model, ModelSettings, Usage
from .models.messages import AssistantMessage, ImagePart, TextPart, UserMessage
from .runtime import current_runtime
from .sandbox.fs import SandboxFS
from .sandbox.protocol import ExecResult, Sandbox
from .stores.sessions import SessionKey, StoredMessage

__all__ = ["Operation", "PromptResult", "PromptStream", "Session", "SessionOwner", "describe_input"]


@dataclass(slots=True)
class PromptResult:
    """What an operation produced. ``messages`` are the messages it added to the history."""

    text: str
    usage: Usage
    operation_id: str
    messages: list[UserMessage | AssistantMessage] = field(default_factory=list)
    finish_reason: str = "stop"
    output: Any = None

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class Operation:
    """An operation in flight: its correlated ``emit``, its id, what it has spent so far (reported
    by ``operation_end`` whatever the outcome), and the ``text`` its end reports."""

    emit: Emit
    operation_id: str
    usage: Usage = field(default_factory=Usage)
    text: str | None = None


class SessionOwner(Protocol):
    """What a session needs of the agent instance it belongs to; the harness implements it."""

    @property
    def name(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def bus(self) -> EventBus: ...
    @property
    def sandbox(self) -> Sandbox: ...

    async def run_prompt(
        self,
        session: Session,
        input: str | list[Any],
        *,
        result: Any,
        model: str | Model | None,
        model_settings: ModelSettings | None,
        stream: bool,
    ) -> PromptResult: ...

    async def run_task(
        self,
        session: Session,
        input: str | list[Any],
        *,
        agent: str | None,
        result: Any,
        role: Any = None,
    ) -> PromptResult: ...

    async def run_skill(self, session: Session, name: str, *, args: Any, result: Any) -> PromptResult: ...

    async def run_compaction(
        self, session: Session, keep_recent: int | None, instructions: str | None
    ) -> Any: ...


class Session:
    """A conversation: its history, and ``prompt`` / ``stream`` / ``task`` / ``compact`` / ``abort``."""

    __slots__ = ("_abort_reason", "_fs", "_scope", "harness", "id", "key", "messages", "operation_id")

    def __init__(self, harness: SessionOwner, session_id: str, messages: History) -> None:
        self.harness = harness
        self.id = session_id
        #: The live history, shared by every session object of this stored session. Operations
        #: write through it while they hold the session's turn.
        self.messages = messages
        #: The store key (the one object the history and the store also keep).
        self.key: SessionKey = messages.key
        self._scope: anyio.CancelScope | None = None
        self._abort_reason: str | None = None
        #: The operation in flight, or None (tasks use it as their parent_id).
        self.operation_id: str | None = None
        self._fs: SandboxFS | None = None

    @property
    def history(self) -> list[StoredMessage]:
        """A copy of the messages so far."""
        return self.messages.snapshot()

    def __repr__(self) -> str:
        return f"Session({self.harness.name!r}, {self.harness.id!r}, {self.id!r})"

    # -- operations --------------------------------------------------------------------------------

    async def prompt(
        self,
        input: str | list[Any],
        *,
        result: Any = None,
        model: str | Model | None = None,
        model_settings: ModelSettings | None = None,
    ) -> PromptResult:
        """Send ``input`` (text, or a list of text/image parts) and run the turn loop to the answer.
        With ``result=`` a type, ``.output`` is the validated value."""
        return await self.harness.run_prompt(
            self, input, result=result, model=model, model_settings=model_settings, stream=False
        )

    def stream(
        self,
        input: str | list[Any],
        *,
        result: Any = None,
        model: str | Model | None = None,
        model_settings: ModelSettings | None = None,
    ) -> PromptStream:
        """Like :meth:`prompt`, yielding the operation's events as they happen (text deltas, tool
        calls, nested task events) and then the :class:`PromptResult`."""
        return PromptStream(self, input, result, model, model_settings)

    async def task(
        self, input: str | list[Any], *, agent: str | None = None, result: Any = None, role: Any = None
    ) -> PromptResult:
        """Delegate to a subagent in a fresh child session (see :mod:`pyflue.tasks`). ``role`` (the
        name of a project role, or a :class:`~pyflue.skills.Role`) is layered on the child's
        instructions."""
        return await self.harness.run_task(self, input, agent=agent, result=result, role=role)

    async def skill(self, name: str, args: Any = None, result: Any = None) -> PromptResult:
        """Run the agent's skill ``name`` as an operation of kind ``skill``: ``args`` are checked
        against the skill's ``args`` schema, and ``.output`` is typed by ``result`` or, without
        it, by the skill's ``result`` schema (see :mod:`pyflue.skills`)."""
        return await self.harness.run_skill(self, name, args=args, result=result)

    # -- the workspace -----------------------------------------------------------------------------

    @property
    def fs(self) -> SandboxFS:
        """The agent's sandbox for code: ``read``, ``write``, ``edit``, ``list``, ``glob``, ``grep``,
        ``shell``. Writes and commands are reported as ``fs_write`` / ``shell_exec`` events of this
        session."""
        if self._fs is None:
            owner = self.harness
            emit = partial(owner.bus.emit, agent=owner.name, instance_id=owner.id, session_id=self.id)
            self._fs = SandboxFS(owner.sandbox, emit)
        return self._fs

    async def shell(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str = "/",
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``command`` in the agent's sandbox under its policy (:meth:`SandboxFS.shell`)."""
        return await self.fs.shell(command, timeout=timeout, cwd=cwd, stdin=stdin)

    async def compact(self, keep_recent: int | None = None, instructions: str | None = None) -> Any:
        """Summarise older messages now (see :mod:`pyflue.compaction`)."""
        return await self.harness.run_compaction(self, keep_recent, instructions)

    async def abort(self, reason: str = "aborted") -> bool:
        """Cancel this session's operation in flight; False when none is running."""
        if self._scope is None:
            return False
        self._abort_reason = reason
        self._scope.cancel()
        return True

    # -- the public history API --------------------------------------------------------------------

    async def append(self, messages: Sequence[StoredMessage]) -> None:
        """Add messages to the history (stored first), taking the session's turn like an operation."""
        async with self._turn():
            await self.messages.append(list(messages))

    async def replace(self, messages: Sequence[StoredMessage]) -> None:
        """Replace the whole history atomically, taking the session's turn like an operation."""
        async with self._turn():
            await self.messages.replace(list(messages))

    def holds_turn(self) -> bool:
        """Whether the calling code runs inside an operation of this stored session (a tool or a
        task of it): such code must not wait for the session's turn, which it already holds."""
        return (id(self.messages.store), self.key) in _held.get()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self.holds_turn():
            raise ConfigError(
                "a session's history cannot be changed from inside its own running operation "
                "(it would wait for itself)"
            )
        async with self.messages.gate:
            await self.messages.take_turn(new_operation_id(), current_runtime().session_lease_seconds)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.messages.abandon_turn()

    # -- the operation lifecycle -------------------------------------------------------------------

    @asynccontextmanager
    async def operation(
        self,
        kind: str,
        input: Any,
        *,
        parent_id: str | None = None,
        operation_id: str | None = None,
    ) -> AsyncIterator[Operation]:
        """The lifecycle every operation on a session shares (prompt, stream, task, compact,
        dispatch): it waits its turn, emits ``operation_start`` / ``operation_end`` (with the
        operation's ``usage`` and the body's ``text``), and makes :meth:`abort` cancel the body:
        then ``abort`` is emitted, the end says ``aborted`` and ``AbortedError`` is raised. A body
        that fails settles its own history before the error reaches this lifecycle."""
        bus = self.harness.bus
        op_id = operation_id or new_operation_id()
        emit: Emit = partial(
            bus.emit,
            agent=self.harness.name,
            instance_id=self.harness.id,
            session_id=self.id,
            operation_id=op_id,
            parent_id=parent_id,
        )
        op = Operation(emit, op_id)
        runtime = current_runtime()
        turn = (id(self.messages.store), self.key)
        async with self.messages.gate:
            held = _held.set(_held.get() | {turn})
            try:
                started = time.perf_counter()
                async with bus.delivering():
                    emit("operation_start", {"kind": kind, "input": input})
                    history = self.messages
                    with anyio.CancelScope() as scope:
                        self._scope, self._abort_reason, self.operation_id = scope, None, op_id
                        renewing: anyio.CancelScope | None = None  # only while a store lease is held
                        try:
                            await history.take_turn(op_id, runtime.session_lease_seconds)
                            if history.leased:
                                renewing = anyio.CancelScope()
                                await runtime.start_soon(partial(_renew, history, renewing))
                            yield op
                        except BaseException as exc:
                            if renewing is not None:
                                renewing.cancel()
                            self._scope = self.operation_id = None
                            with anyio.CancelScope(shield=True):
                                await history.abandon_turn()
                            if not (scope.cancel_called and self._abort_reason is not None):
                                cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                                emit(
                                    "operation_end",
                                    _end("cancelled" if cancelled else "failed", op, started, exc),
                                )
                                raise
                    self._scope = self.operation_id = None
                    if renewing is not None:
                        renewing.cancel()
                    try:
                        # Outside the operation's scope: an abort arriving now cannot cut this write.
                        await history.end_turn()
                    except BaseException as exc:
                        with anyio.CancelScope(shield=True):
                            await history.abandon_turn()
                        emit("operation_end", _end("failed", op, started, exc))
                        raise
                    if scope.cancel_called and self._abort_reason is not None:
                        reason = self._abort_reason
                        emit("abort", {"reason": reason})
                        error = AbortedError(f"operation {op_id} was aborted: {reason}")
                        emit("operation_end", _end("aborted", op, started, error))
                        raise error
                    data = _end("completed", op, started, None)
                    if op.text is not None:
                        data["text"] = op.text
                    emit("operation_end", data)
            finally:
                _held.reset(held)


async def _renew(history: History, scope: anyio.CancelScope) -> None:
    with scope:
        await history.hold_turn()


#: The session turns the calling code holds: an operation's body (and the tools and tasks it runs)
#: holds its session's turn, so it must not wait for that turn again.
_held: contextvars.ContextVar[frozenset[tuple[int, SessionKey]]] = contextvars.ContextVar(
    "pyflue_held_turns", default=frozenset()
)


def _end(status: str, op: Operation, started: float, exc: BaseException | None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "usage": op.usage.to_dict(), "duration_ms": elapsed_ms(started)}
    if exc is not None:
        data["error"] = error_payload(exc)
    return data


def describe_input(input: str | list[Any]) -> Any:
    """An operation's input as JSON-friendly data (image bytes summarised, not copied)."""
    if isinstance(input, str):
        return input
    out: list[Any] = []
    for item in input:
        if isinstance(item, TextPart | ImagePart):  # part objects as the dicts they stand for
            item = {k: v for k in ("type", *item.__dataclass_fields__) if (v := getattr(item, k)) is not None}
        if isinstance(item, dict):
            out.append({k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in item.items()})
        else:
            out.append(repr(item) if not isinstance(item, str) else item)
    return out


class PromptStream:
    """The events of one streamed operation, then its :class:`PromptResult` (also kept as
    ``.result``).

    ``async with session.stream(...) as events`` runs the operation in a task group of that block:
    leaving it cancels an unfinished operation and waits until it has wound down (history settled,
    ``operation_end`` emitted). Iterated directly (``async for event in session.stream(...)``), the
    operation runs in the current :class:`~pyflue.runtime.Runtime`'s task group, and breaking out
    early cancels it.
    """

    def __init__(
        self,
        session: Session,
        input: str | list[Any],
        result: Any,
        model: str | Model | None,
        settings: ModelSettings | None,
    ) -> None:
        self._args = (session, input, result, model, settings)
        self.result: PromptResult | None = None
        self._queue: deque[Event | PromptResult | BaseException | None] = deque()
        self._wake: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._done = anyio.Event()
        self._group: TaskGroup | None = None

    def _producer(self) -> Any:
        if self._scope is not None:
            raise ConfigError("a PromptStream runs once")
        session, input, result, model, settings = self._args
        queue = self._queue
        scope = self._scope = anyio.CancelScope()
        done = self._done
        caller = contextvars.copy_context()  # the caller's context (trace, runtime), not the group's

        def put(item: Event | PromptResult | BaseException | None) -> None:
            queue.append(item)
            if self._wake is not None:
                self._wake.set()

        async def produce() -> None:
            for var, value in caller.items():
                var.set(value)
            token = set_sink(put)
            try:
                with scope:
                    put(
                        await session.harness.run_prompt(
                            session, input, result=result, model=model, model_settings=settings, stream=True
                        )
                    )
            except Exception as exc:
                put(exc)
            finally:
                reset_sink(token)
                put(None)  # end of stream
                done.set()

        return produce

    def _stop(self) -> None:
        """Cancel the operation unless it finished (safe from any task of the event loop)."""
        if self.result is None and self._scope is not None:
            self._scope.cancel()

    async def __aenter__(self) -> PromptStream:
        produce = self._producer()
        group = self._group = anyio.create_task_group()
        await group.__aenter__()
        group.start_soon(produce)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._stop()
        group, self._group = self._group, None
        if group is None:
            return None
        try:
            return await group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as errors:
            # The producer reports its errors through the iterator and never raises, so a group
            # holding only the block's own error is that error: it goes on as itself, typed.
            if exc is None or len(errors.exceptions) != 1 or errors.exceptions[0] is not exc:
                raise
        raise exc

    def __aiter__(self) -> AsyncIterator[Event | PromptResult]:
        return self._items(own=self._scope is None)

    async def _items(self, own: bool) -> AsyncIterator[Event | PromptResult]:
        if own:
            await current_runtime().start_soon(self._producer())
        queue = self._queue
        try:
            while True:
                # Take what is already queued without a checkpoint per item: a delta costs microseconds.
                while not queue:
                    self._wake = anyio.Event()
                    if not queue:
                        await self._wake.wait()
                    self._wake = None
                item = queue.popleft()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, PromptResult):
                    self.result = item
                yield item
        finally:
            if own:
                # No await here: after a ``break`` the event loop finalises this generator in a task
                # of its own, where the operation can be cancelled but not waited for.
                self._stop()
