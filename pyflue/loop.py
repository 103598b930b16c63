"""The turn loop: model call → the turn's tool calls, concurrently → repeat until an answer.

History stays consistent whatever happens: messages are kept at points where every tool call has
its result (a turn is stored as one append), and a turn cut short by an abort or an error gets an
error result for each call that has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .errors import (
    ContextOverflowError,
    MaxTurnsError,
    OutputValidationError,
    ToolError,
    error_payload,
)
from .events import Event
from .models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ResponseBuilder,
    TextDelta,
    ThinkingDelta,
    Usage,
)
from .models.messages import AssistantMessage, TextPart, ToolCallPart, ToolResultPart, UserMessage
from .output import OutputSpec, describe_error
from .tools import Tool, ToolContext, tool_result_text

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Turns", "call_model", "current_turns"]

Emit = Callable[[str, dict[str, Any]], Event | None]


@dataclass(slots=True)
class Turns:
    """One operation's state as the loop runs it."""

    session: Session
    model: Model
    instructions: str | None
    tools: dict[str, Tool]
    settings: ModelSettings
    output: OutputSpec | None
    max_turns: int
    output_retries: int
    emit: Emit
    operation_id: str
    stream: bool
    tool_timeout: float | None = None
    usage: Usage = field(default_factory=Usage)
    new: list[UserMessage | AssistantMessage] = field(default_factory=list)
    unsaved: list[UserMessage | AssistantMessage] = field(default_factory=list)
    finish_reason: str = "stop"
    compactor: Any = None  # pyflue.compaction.Compactor when the agent compacts

    def add(self, message: UserMessage | AssistantMessage) -> None:
        self.session._history.append(message)
        self.new.append(message)
        self.unsaved.append(message)

    async def save(self) -> None:
        """Append the unsaved messages as one batch; on failure they stay unsaved (see _settle)."""
        if self.unsaved:
            await self.session.harness.store.append(self.session.key, self.unsaved)
            self.unsaved = []

    async def run(self, prompt: UserMessage) -> tuple[str, Any]:
        """Run to the final answer; returns ``(text, typed output or None)``."""
        token = _current.set(self)
        try:
            return await self._run(prompt)
        finally:
            _current.reset(token)

    async def _run(self, prompt: UserMessage) -> tuple[str, Any]:
        self.add(prompt)
        native = self.output is not None and getattr(self.model, "output_mode", "prompted") == "native"
        instructions = self.instructions
        if self.output is not None and not native:
            instructions = (
                f"{instructions}\n\n{self.output.prompt()}" if instructions else self.output.prompt()
            )
        definitions = [tool.definition for tool in self.tools.values()]
        repairs = 0
        for _ in range(self.max_turns):
            request = ModelRequest(
                list(self.session._history),
                instructions,
                definitions,
                self.settings,
                self.output.schema if native and self.output is not None else None,
            )
            response = await self._call_model(request)
            self.add(response.message())
            calls = response.tool_calls
            if calls:
                self.add(UserMessage(await self._run_tools(calls)))  # type: ignore[arg-type]
                await self.save()
                continue
            await self.save()
            text = response.text
            if self.output is None:
                return text, None
            try:
                return text, self.output.parse(text)
            except ValueError as exc:
                if repairs >= self.output_retries:
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
            f"no final answer after max_turns={self.max_turns} model calls; "
            "raise max_turns or simplify the task"
        )

    async def _call_model(self, request: ModelRequest) -> ModelResponse:
        if self.compactor is not None:
            await self.compactor.before_call(self, request)
        try:
            return await self._model_call(request)
        except ContextOverflowError:
            if self.compactor is None or not await self.compactor.on_overflow(self, request):
                raise
            return await self._model_call(request)

    async def _model_call(self, request: ModelRequest) -> ModelResponse:
        stream = self.stream or self.session.harness.bus.active
        response = await call_model(self.model, request, self.emit, stream=stream)
        self.usage = self.usage + response.usage
        self.finish_reason = response.finish_reason
        if self.compactor is not None:
            self.compactor.observe_usage(self, response.usage)
        return response

    async def _run_tools(self, calls: list[ToolCallPart]) -> list[ToolResultPart]:
        results: list[ToolResultPart | None] = [None] * len(calls)

        async def run_one(index: int, call: ToolCallPart) -> None:
            results[index] = await self._run_tool(call)

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

    async def _run_tool(self, call: ToolCallPart) -> ToolResultPart:
        emit = self.emit
        emit("tool_start", {"tool": call.name, "call_id": call.id, "args": call.args})
        started = time.perf_counter()
        tool = self.tools.get(call.name)
        try:
            if tool is None:
                known = ", ".join(self.tools) or "none"
                raise ToolError(f"unknown tool {call.name!r}; available tools: {known}")
            harness = self.session.harness
            ctx = (
                ToolContext(
                    harness.name,
                    harness.id,
                    self.session.id,
                    self.operation_id,
                    call.id,
                    harness.run_id,
                    harness.context.env,
                    self.session,
                )
                if tool.takes_ctx
                else None
            )
            value = await tool.call(call.args, ctx, self.tool_timeout)
            content = tool_result_text(value)
        except BaseException as exc:
            error = error_payload(exc)
            emit(
                "tool_end",
                {"tool": call.name, "call_id": call.id, "error": error, "duration_ms": _ms(started)},
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
            {"tool": call.name, "call_id": call.id, "result": content, "duration_ms": _ms(started)},
        )
        return ToolResultPart(call.id, call.name, content)


_current: ContextVar[Turns | None] = ContextVar("pyflue_turns", default=None)


def current_turns() -> Turns | None:
    """The operation whose turn loop the calling code runs in (a tool, or a task a tool started), or
    ``None``. ``session.task()`` called from a tool joins that operation this way, instead of waiting
    for the session's turn, which the operation itself holds."""
    return _current.get()


async def call_model(model: Model, request: ModelRequest, emit: Emit, *, stream: bool) -> ModelResponse:
    """One model call, reported as every caller reports it: ``model_start``; with ``stream`` the
    provider's stream, each text/thinking delta an event; then ``model_end`` with the usage, or with
    the error. The response's usage always counts its request."""
    emit(
        "model_start",
        {"provider": model.provider, "model": model.model_name, "settings": dict(request.settings)},
    )
    started = time.perf_counter()
    try:
        if stream:
            builder = ResponseBuilder()
            async with model.stream(request) as events:
                async for event in events:
                    builder.add(event)
                    if type(event) is TextDelta:
                        emit("text_delta", {"text": event.text})
                    elif type(event) is ThinkingDelta and event.text:
                        emit("thinking_delta", {"text": event.text})
            response = builder.build()
        else:
            response = await model.request(request)
    except BaseException as exc:
        emit("model_end", {"error": error_payload(exc), "duration_ms": _ms(started)})
        raise
    usage = response.usage
    if usage.requests == 0:
        response.usage = Usage(
            usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens, 1
        )
    emit(
        "model_end",
        {
            "response_id": response.response_id,
            "response_model": response.model or model.model_name,
            "finish_reason": response.finish_reason,
            "usage": response.usage.to_dict(),
            "duration_ms": _ms(started),
        },
    )
    return response


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
