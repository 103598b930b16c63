"""The turn loop: model call → the turn's tool calls, concurrently → repeat until an answer.

History stays consistent whatever happens: messages are kept at points where every tool call has
its result (a turn is stored as one append), and a turn cut short by an abort or an error gets an
error result for each call that has none. An operation that fails before any answer leaves no trace
in the history (the caller can simply retry); one that made progress keeps it.

Compaction plugs in through :class:`CompactionHooks`; subagent tasks are tools (and join the running
operation through :func:`current_turns`). The loop knows neither.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ._clock import elapsed_ms
from .errors import (
    ContextOverflowError,
    MaxTurnsError,
    OutputValidationError,
    ToolError,
    error_payload,
)
from .journal import RunJournal, current_journal, is_idempotent
from .model_calls import call_model
from .models.base import Model, ModelRequest, ModelResponse, ModelSettings, Usage
from .models.messages import AssistantMessage, TextPart, ToolCallPart, ToolResultPart, UserMessage
from .output import OutputSpec, describe_error
from .session import Operation, PromptResult, Session
from .stores.sessions import StoredMessage
from .tools import Tool, ToolContext, tool_result_text

__all__ = ["CompactionHooks", "TurnPlan", "Turns", "current_turns", "run_turns"]

_log = logging.getLogger("pyflue.loop")


class CompactionHooks(Protocol):
    """How compaction plugs into the loop (one object per operation; see :mod:`pyflue.compaction`).

    ``before_call`` may compact the history before a model call (and updates ``request.messages``);
    ``on_overflow`` compacts after a provider ``ContextOverflowError`` and says whether a retry can
    help; ``observe_usage`` records what the provider reported of the prompt's size.
    """

    async def before_call(self, turns: Turns, request: ModelRequest) -> None: ...
    async def on_overflow(self, turns: Turns, request: ModelRequest) -> bool: ...
    def observe_usage(self, turns: Turns, usage: Usage) -> None: ...


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """Everything one operation's loop runs with, decided before it starts."""

    model: Model
    instructions: str | None
    tools: Mapping[str, Tool]
    settings: ModelSettings
    output: OutputSpec | None = None
    max_turns: int = 25
    output_retries: int = 2
    stream: bool = False
    tool_timeout: float | None = None
    compaction: CompactionHooks | None = None
    run_id: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    sandbox: Any = None


class Turns:
    """One operation's state as the loop runs it: the session, the operation (its ``emit``, id and
    usage), the plan, and the messages it added."""

    __slots__ = ("finish_reason", "new", "op", "plan", "session")

    def __init__(self, session: Session, op: Operation, plan: TurnPlan) -> None:
        self.session = session
        self.op = op
        self.plan = plan
        self.new: list[UserMessage | AssistantMessage] = []
        self.finish_reason = "stop"

    @property
    def model(self) -> Model:
        return self.plan.model

    @property
    def usage(self) -> Usage:
        """What the operation has spent so far."""
        return self.op.usage

    @property
    def operation_id(self) -> str:
        return self.op.operation_id

    def emit(self, type: str, data: dict[str, Any]) -> Any:
        return self.op.emit(type, data)

    def spend(self, usage: Usage) -> None:
        """Count ``usage`` (a model call, a summary, a joined task) in the operation's usage."""
        self.op.usage = self.op.usage + usage

    def add(self, message: UserMessage | AssistantMessage) -> None:
        self.session.messages.add(message)
        self.new.append(message)

    async def settle(self) -> None:
        """After a failure: an operation that got no answer leaves no trace in the history; one that
        made progress keeps it, tool calls all answered. If the store cannot take that progress
        either, memory drops it too: memory never holds messages the store does not."""
        history = self.session.messages
        if any(isinstance(m, AssistantMessage) for m in self.new):
            try:
                await history.save()
                return
            except Exception:
                _log.exception("could not store the progress of a failed operation on %r", self.session)
        history.discard(history.pending or self.new)

    async def run(self, prompt: UserMessage) -> tuple[str, Any]:
        """Run to the final answer; returns ``(text, typed output or None)``."""
        token = _current.set(self)
        try:
            return await self._run(prompt)
        finally:
            _current.reset(token)

    async def _run(self, prompt: UserMessage) -> tuple[str, Any]:
        unknown = _unanswered(self.session.messages)
        if unknown:
            prompt = UserMessage([*unknown, *prompt.parts])
        self.add(prompt)
        plan = self.plan
        output = plan.output
        native = output is not None and plan.model.output_mode == "native"
        instructions = plan.instructions
        if output is not None and not native:
            instructions = f"{instructions}\n\n{output.prompt()}" if instructions else output.prompt()
        definitions = [tool.definition for tool in plan.tools.values()]
        history = self.session.messages
        repairs = 0
        for _ in range(plan.max_turns):
            request = ModelRequest(
                history.snapshot(),
                instructions,
                definitions,
                plan.settings,
                output.schema if native and output is not None else None,
            )
            response = await self._call_model(request)
            self.add(response.message())
            calls = response.tool_calls
            if calls:
                # The calls are stored before any tool runs: if this process dies mid-tool, the next
                # operation sees which calls started and gets "outcome unknown" for each, instead of
                # the model silently calling them again (see _unanswered).
                await history.save()
                self.add(UserMessage(await self._run_tools(calls)))  # type: ignore[arg-type]
                await history.save()
                continue
            # The answer stays pending: the operation's end stores it and gives up the turn in one write.
            text = response.text
            if output is None:
                return text, None
            try:
                return text, output.parse(text)
            except ValueError as exc:
                if repairs >= plan.output_retries:
                    raise OutputValidationError(
                        f"the model's output failed validation after {repairs} repair(s): "
                        f"{describe_error(exc)}"
                    ) from exc
                repairs += 1
                self.add(
                    UserMessage(
                        [
                            TextPart(
                                f"Your answer failed validation: {describe_error(exc)}. "
                                "Answer again with only the corrected JSON."
                            )
                        ]
                    )
                )
        raise MaxTurnsError(
            f"no final answer after max_turns={plan.max_turns} model calls; "
            "raise max_turns or simplify the task"
        )

    async def _call_model(self, request: ModelRequest) -> ModelResponse:
        hooks = self.plan.compaction
        if hooks is not None:
            await hooks.before_call(self, request)
        try:
            return await self._model_call(request)
        except ContextOverflowError:
            if hooks is None or not await hooks.on_overflow(self, request):
                raise
            return await self._model_call(request)

    async def _model_call(self, request: ModelRequest) -> ModelResponse:
        stream = self.plan.stream or self.session.harness.bus.active
        response = await call_model(self.plan.model, request, self.op.emit, stream=stream)
        self.spend(response.usage)
        self.finish_reason = response.finish_reason
        if self.plan.compaction is not None:
            self.plan.compaction.observe_usage(self, response.usage)
        return response

    async def _run_tools(self, calls: list[ToolCallPart]) -> list[ToolResultPart]:
        results: list[ToolResultPart | None] = [None] * len(calls)
        journal = current_journal()
        # In a resumable run each call is a journal step; their keys are taken in the model's order
        # before any starts, so concurrent calls replay in the same places however they ran.
        keys = journal.keys(len(calls)) if journal is not None else []

        async def run_one(index: int, call: ToolCallPart) -> None:
            if journal is None:
                results[index] = await self._run_tool(call)
            else:
                results[index] = await self._journaled_tool(journal, keys[index], call)

        try:
            if len(calls) == 1:
                await run_one(0, calls[0])
            else:
                async with anyio.create_task_group() as tg:
                    for index, call in enumerate(calls):
                        tg.start_soon(run_one, index, call)
        except BaseException:
            # Aborted or cancelled mid-tool: every call still gets a result, so history stays valid.
            self.add(
                UserMessage(
                    [
                        result or ToolResultPart(call.id, call.name, "error: the operation was aborted", True)
                        for call, result in zip(calls, results, strict=True)
                    ]
                )
            )
            raise
        return [r for r in results if r is not None]

    async def _journaled_tool(self, journal: RunJournal, key: str, call: ToolCallPart) -> ToolResultPart:
        """A tool call as a step of the run's journal (replayed with no events when recorded)."""
        tool = self.plan.tools.get(call.name)
        retry = tool is not None and is_idempotent(tool)
        return await journal.tool_call(key, call, retry, lambda: self._run_tool(call))

    async def _run_tool(self, call: ToolCallPart) -> ToolResultPart:
        emit = self.op.emit
        plan = self.plan
        emit("tool_start", {"tool": call.name, "call_id": call.id, "args": call.args})
        started = time.perf_counter()
        tool = plan.tools.get(call.name)
        try:
            if tool is None:
                known = ", ".join(plan.tools) or "none"
                raise ToolError(f"unknown tool {call.name!r}; available tools: {known}")
            session = self.session
            ctx = (
                ToolContext(
                    session.harness.name,
                    session.harness.id,
                    session.id,
                    self.op.operation_id,
                    call.id,
                    plan.run_id,
                    plan.env,
                    session,
                    emit,
                    plan.sandbox,
                )
                if tool.takes_ctx
                else None
            )
            value = await tool.call(call.args, ctx, plan.tool_timeout)
            content = tool_result_text(value)
        except BaseException as exc:
            error = error_payload(exc)
            emit(
                "tool_end",
                {"tool": call.name, "call_id": call.id, "error": error, "duration_ms": elapsed_ms(started)},
            )
            if not isinstance(exc, Exception):  # cancelled (abort, run cancel): the call still ends
                raise
            message = (
                f"error: {error['message']}"
                if isinstance(exc, ToolError)
                else (f"error: {error['type']}: {error['message']}")
            )
            return ToolResultPart(call.id, call.name, message, True)
        emit(
            "tool_end",
            {"tool": call.name, "call_id": call.id, "result": content, "duration_ms": elapsed_ms(started)},
        )
        return ToolResultPart(call.id, call.name, content)


UNKNOWN_OUTCOME = (
    "error: the outcome of this call is unknown: the process running it stopped before it finished "
    "(it may or may not have taken effect); check before calling it again"
)


def _unanswered(history: Sequence[StoredMessage]) -> list[ToolResultPart]:
    """Results for the tool calls the history's last message left without one: a process that died
    while tools ran stored the calls but not their results. Each gets an error result saying its
    outcome is unknown, so the conversation is valid again and nothing is silently run twice."""
    if not history:
        return []
    last = history[-1]
    if not isinstance(last, AssistantMessage):
        return []
    return [
        ToolResultPart(part.id, part.name, UNKNOWN_OUTCOME, True)
        for part in last.parts
        if isinstance(part, ToolCallPart)
    ]


_current: ContextVar[Turns | None] = ContextVar("pyflue_turns", default=None)


def current_turns() -> Turns | None:
    """The operation whose turn loop the calling code runs in (a tool, or a task a tool started), or
    ``None``. ``session.task()`` called from a tool joins that operation this way, instead of waiting
    for the session's turn, which the operation itself holds."""
    return _current.get()


async def run_turns(session: Session, op: Operation, plan: TurnPlan, prompt: UserMessage) -> PromptResult:
    """Run ``prompt`` on ``session`` as the body of operation ``op`` to the final answer. On failure
    the history is settled (see :meth:`Turns.settle`) before the error propagates."""
    turns = Turns(session, op, plan)
    try:
        text, output = await turns.run(prompt)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await turns.settle()
        raise
    op.text = text
    return PromptResult(text, op.usage, op.operation_id, turns.new, turns.finish_reason, output)
