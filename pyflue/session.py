"""Sessions: one conversation of an agent instance, and the operations run on it.

Operations on one session run one at a time in arrival order (a FIFO lock shared by every harness of
the process); different sessions run concurrently. ``abort()`` cancels the operation in flight on
this session only (queued operations go on) and leaves the history consistent.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from ._gates import session_turn
from .errors import AbortedError, ConfigError, error_payload
from .events import Event, reset_sink, set_sink
from .ids import new_operation_id
from .loop import Emit, Turns
from .models.base import Model, ModelSettings, Usage
from .models.messages import AssistantMessage, ImagePart, TextPart, UserMessage, user_parts
from .models.registry import resolve_model
from .output import output_spec
from .stores.base import SessionKey

if TYPE_CHECKING:
    from .agent import AgentHarness

__all__ = ["PromptResult", "PromptStream", "Session"]

_log = logging.getLogger("pyflue.session")


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


class Session:
    """A conversation: its history, and ``prompt`` / ``stream`` / ``task`` / ``compact`` / ``abort``."""

    __slots__ = ("_abort_reason", "_history", "_scope", "harness", "id", "key", "operation_id")

    def __init__(
        self,
        harness: AgentHarness,
        session_id: str,
        history: list[UserMessage | AssistantMessage],
        key: SessionKey | None = None,
    ) -> None:
        self.harness = harness
        self.id = session_id
        #: The store key; the harness passes the one object its registry and the store also keep.
        self.key = key or SessionKey(harness.name, harness.id, session_id)
        self._history = history
        self._scope: anyio.CancelScope | None = None
        self._abort_reason: str | None = None
        self.operation_id: str | None = None  # the operation in flight (tasks use it as parent_id)

    @property
    def history(self) -> list[UserMessage | AssistantMessage]:
        """A copy of the messages so far."""
        return list(self._history)

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
        return await self._operate("prompt", input, result, model, model_settings, stream=False)

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
        self, input: str | list[Any], *, agent: str | None = None, result: Any = None
    ) -> PromptResult:
        """Delegate to a subagent in a fresh child session (see :mod:`pyflue.tasks`)."""
        from .tasks import run_task

        return await run_task(self, input, agent=agent, result=result)

    async def compact(self, keep_recent: int | None = None, instructions: str | None = None) -> Any:
        """Summarise older messages now (see :mod:`pyflue.compaction`)."""
        from .compaction import compact_session

        return await compact_session(self, keep_recent=keep_recent, instructions=instructions)

    async def abort(self, reason: str = "aborted") -> bool:
        """Cancel this session's operation in flight; False when none is running."""
        if self._scope is None:
            return False
        self._abort_reason = reason
        self._scope.cancel()
        return True

    async def _operate(
        self,
        kind: str,
        input: str | list[Any],
        result: Any,
        model: str | Model | None,
        model_settings: ModelSettings | None,
        *,
        stream: bool,
        parent_id: str | None = None,
        operation_id: str | None = None,
    ) -> PromptResult:
        harness = self.harness
        config = harness.config
        parts = user_parts(input)
        spec = output_spec(result) if result is not None else None
        if spec is not None and spec.schema.name in harness.tools:
            raise ConfigError(
                f"agent {harness.name!r}: a tool is named {spec.schema.name!r}, the name typed output uses; "
                "rename the tool to ask for result=..."
            )
        chosen = resolve_model(model, harness.context.env) if model is not None else harness.model
        settings: ModelSettings = {**config.model_settings, **(model_settings or {})}  # type: ignore[typeddict-item]
        turns: Turns | None = None

        def usage() -> Usage:
            return turns.usage if turns is not None else Usage()

        async def settle() -> None:
            if turns is not None:
                await self._settle(turns)

        async with operation(
            self, kind, _describe(input), usage, parent_id=parent_id, operation_id=operation_id, settle=settle
        ) as op:
            turns = Turns(
                self,
                chosen,
                harness.instructions(),
                _tools_of(self),
                settings,
                spec,
                config.max_turns,
                config.output_retries,
                op.emit,
                op.operation_id,
                stream,
                config.tool_timeout,
            )
            turns.compactor = _compactor_of(self)
            text, output = await turns.run(UserMessage(parts))
            op.text = text
        return PromptResult(text, turns.usage, op.operation_id, turns.new, turns.finish_reason, output)

    async def _settle(self, turns: Turns) -> None:
        """After a failure: an operation that got no answer leaves no trace in the history (the
        caller can simply retry); one that made progress keeps it, tool calls all answered. If the
        store cannot take that progress either, memory drops it too: memory never holds messages
        the store does not (the operation's own error is what the caller sees)."""
        if any(isinstance(m, AssistantMessage) for m in turns.new):
            try:
                await turns.save()
                return
            except Exception:
                _log.exception("could not store the progress of a failed operation on %r", self)
        # By identity: an equal message sent earlier must stay.
        dropped = {id(m) for m in turns.unsaved} if turns.unsaved else {id(m) for m in turns.new}
        self._history[:] = [m for m in self._history if id(m) not in dropped]
        turns.unsaved.clear()


@dataclass(slots=True)
class Operation:
    """An operation in flight: its correlated ``emit``, its id, and the ``text`` its end reports."""

    emit: Emit
    operation_id: str
    text: str | None = None


@asynccontextmanager
async def operation(
    session: Session,
    kind: str,
    input: Any,
    usage: Callable[[], Usage],
    *,
    parent_id: str | None = None,
    operation_id: str | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Operation]:
    """The lifecycle every operation on a session shares (prompt, stream, task, compact): it waits
    its turn, emits ``operation_start`` / ``operation_end`` (with ``usage()`` and the body's
    ``text``), and makes ``session.abort()`` cancel the body: then ``abort`` is emitted, the end says
    ``aborted`` and ``AbortedError`` is raised. ``settle`` runs (shielded) when the body fails."""
    harness = session.harness
    bus = harness.bus
    op_id = operation_id or new_operation_id()
    emit: Emit = partial(
        bus.emit,
        agent=harness.name,
        instance_id=harness.id,
        session_id=session.id,
        operation_id=op_id,
        parent_id=parent_id,
    )
    op = Operation(emit, op_id)
    async with session_turn((id(harness.store), session.key)):
        started = time.perf_counter()
        async with bus.delivering():
            emit("operation_start", {"kind": kind, "input": input})
            with anyio.CancelScope() as scope:
                session._scope, session._abort_reason, session.operation_id = scope, None, op_id
                try:
                    yield op
                except BaseException as exc:
                    session._scope = session.operation_id = None
                    aborted = scope.cancel_called and session._abort_reason is not None
                    with anyio.CancelScope(shield=True):
                        if settle is not None:
                            await settle()
                    if not aborted:
                        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                        emit(
                            "operation_end",
                            _end("cancelled" if cancelled else "failed", usage(), started, exc),
                        )
                        raise
            session._scope = session.operation_id = None
            if scope.cancel_called and session._abort_reason is not None:
                reason = session._abort_reason
                emit("abort", {"reason": reason})
                error = AbortedError(f"operation {op_id} was aborted: {reason}")
                emit("operation_end", _end("aborted", usage(), started, error))
                raise error
            data = _end("completed", usage(), started, None)
            if op.text is not None:
                data["text"] = op.text
            emit("operation_end", data)


def _tools_of(session: Session) -> dict[str, Any]:
    tools = session.harness.tools
    task_tool = getattr(session.harness, "task_tool", None)
    if task_tool is not None:
        return {**tools, task_tool.name: task_tool}
    return tools


def _compactor_of(session: Session) -> Any:
    factory = getattr(session.harness, "compactor", None)
    return factory() if callable(factory) else None


def _end(status: str, usage: Usage, started: float, exc: BaseException | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": status,
        "usage": usage.to_dict(),
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    if exc is not None:
        data["error"] = error_payload(exc)
    return data


def _describe(input: str | list[Any]) -> Any:
    """The operation's input as JSON-friendly data (image bytes summarised, not copied)."""
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
    ``.result``). Iterate it directly — breaking out early cancels the operation — or use
    ``async with session.stream(...) as events``, whose exit also waits until a cancelled operation
    has wound down (its history settled, its ``operation_end`` emitted)."""

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
        self._done: anyio.Event | None = None

    def _start(self) -> None:
        if self._scope is not None:
            raise ConfigError("a PromptStream runs once")
        session, input, result, model, settings = self._args
        queue = self._queue
        scope = self._scope = anyio.CancelScope()
        done = self._done = anyio.Event()

        def put(item: Event | PromptResult | BaseException | None) -> None:
            queue.append(item)
            if self._wake is not None:
                self._wake.set()

        async def produce() -> None:
            token = set_sink(put)
            try:
                with scope:
                    put(await session._operate("prompt", input, result, model, settings, stream=True))
            except Exception as exc:
                put(exc)
            finally:
                reset_sink(token)
                put(None)  # end of stream
                done.set()

        _spawn(produce)

    def _stop(self) -> None:
        """Cancel the operation unless it finished (safe from any task of the event loop)."""
        if self.result is None and self._scope is not None:
            self._scope.cancel()

    async def __aenter__(self) -> PromptStream:
        self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()
        if self._done is not None:
            with anyio.CancelScope(shield=True):
                await self._done.wait()

    def __aiter__(self) -> AsyncIterator[Event | PromptResult]:
        return self._items(own=self._scope is None)

    async def _items(self, own: bool) -> AsyncIterator[Event | PromptResult]:
        if own:
            self._start()
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


_tasks: set[Any] = set()


def _spawn(function: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``function`` in a task of its own (in a copy of the caller's context), outside the
    caller's task groups: a stream abandoned by ``break`` is finalised by the event loop in another
    task, where a task group entered by the consumer could never be left. The stream cancels the
    task itself; the event loop cancels it at shutdown."""
    import asyncio

    context = contextvars.copy_context()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        import trio

        trio.lowlevel.spawn_system_task(function, context=context)
        return
    task = loop.create_task(function(), context=context)
    _tasks.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_tasks.discard)
