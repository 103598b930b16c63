"""Offline models that make agent code testable without a network or a key.

:class:`TestModel` is deterministic: on a fresh prompt it calls each available tool once with
arguments generated from the tool's schema, then answers with a sentence saying so (or with
schema-valid JSON when typed output is requested). :class:`FunctionModel` lets a test decide every
response itself, streaming included.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from ..errors import ConfigError
from .base import (
    ModelRequest,
    ModelResponse,
    OutputMode,
    ResponseBuilder,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from .messages import (
    AssistantPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    dumps,
)

__all__ = ["FunctionModel", "TestModel", "events_for_response", "offline_summary", "schema_example"]


class TestModel:
    """Deterministic offline model (model string ``test``).

    ``call_tools``: ``"all"`` (default) or the names of the tools to call on a fresh prompt.
    ``text``: the final answer; by default a sentence that says it is the offline model, which tools
    it called and (briefly) what they returned, e.g. ``[test model] called count_words; no real model
    was used. Results: count_words: 1``, or ``"success (no tool calls)"`` when it called none.
    ``tool_calls``: explicit ``(name, args)`` pairs to call instead of
    generated ones.
    """

    __test__ = False  # not a pytest class
    output_mode: OutputMode = "native"

    def __init__(
        self,
        *,
        call_tools: Literal["all"] | Sequence[str] = "all",
        text: str | None = None,
        tool_calls: Sequence[tuple[str, dict[str, Any]]] | None = None,
        model_name: str = "test",
    ) -> None:
        self.call_tools = call_tools
        self.text = text
        self.tool_calls = list(tool_calls) if tool_calls is not None else None
        self._model_name = model_name
        self.requests: list[ModelRequest] = []

    @property
    def provider(self) -> str:
        return "test"

    @property
    def model_name(self) -> str:
        return self._model_name

    async def request(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return self._respond(request)

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        self.requests.append(request)
        yield _aiter(events_for_response(self._respond(request), chunk_words=True))

    def _respond(self, request: ModelRequest) -> ModelResponse:
        last = request.messages[-1] if request.messages else None
        results = (
            [p for p in last.parts if isinstance(p, ToolResultPart)] if isinstance(last, UserMessage) else []
        )
        parts: list[AssistantPart]
        if not results and request.tools:
            calls = self._calls(request)
            if calls:
                turn = sum(1 for m in request.messages if m.role == "assistant")
                parts = [ToolCallPart(f"call_{turn}_{i}", name, args) for i, (name, args) in enumerate(calls)]
                return ModelResponse(parts, _usage(request, parts), "tool_calls", None, self.model_name)
        if request.output is not None:
            text = json.dumps(schema_example(request.output.schema))
        elif self.text is not None:
            text = self.text
        elif results:
            text = offline_summary(results)
        else:
            text = "success (no tool calls)"
        parts = [TextPart(text)]
        return ModelResponse(parts, _usage(request, parts), "stop", None, self.model_name)

    def _calls(self, request: ModelRequest) -> list[tuple[str, dict[str, Any]]]:
        if self.tool_calls is not None:
            return list(self.tool_calls)
        wanted = None if self.call_tools == "all" else set(self.call_tools)
        return [
            (tool.name, schema_example(tool.parameters))
            for tool in request.tools
            if wanted is None or tool.name in wanted
        ]


ModelFunction = Callable[[ModelRequest], "ModelResponse | str | Awaitable[ModelResponse | str]"]
StreamFunction = Callable[[ModelRequest], AsyncIterator["str | StreamEvent"]]


class FunctionModel:
    """A model whose every response comes from the test's own function.

    ``function(request)`` returns a :class:`ModelResponse` or a string (sync or async).
    ``stream_function(request)`` is an async generator of strings (text deltas) and stream events.
    Either one serves both calls: a stream is made from ``function``'s response, and a request
    aggregates ``stream_function``'s events.
    """

    def __init__(
        self,
        function: ModelFunction | None = None,
        *,
        stream_function: StreamFunction | None = None,
        model_name: str = "function",
        output_mode: OutputMode = "prompted",
    ) -> None:
        if function is None and stream_function is None:
            raise TypeError("FunctionModel needs function=, stream_function=, or both")
        if output_mode not in ("native", "prompted"):
            raise ConfigError(
                f"FunctionModel output_mode must be 'native' or 'prompted', got {output_mode!r}"
            )
        self.function = function
        self.stream_function = stream_function
        self._model_name = model_name
        self.output_mode: OutputMode = output_mode

    @property
    def provider(self) -> str:
        return "function"

    @property
    def model_name(self) -> str:
        return self._model_name

    async def request(self, request: ModelRequest) -> ModelResponse:
        if self.function is None:
            builder = ResponseBuilder()
            async with self.stream(request) as events:
                async for event in events:
                    builder.add(event)
            return builder.build()
        result = self.function(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ModelResponse([TextPart(result)], Usage(requests=1), "stop", None, self.model_name)
        return result

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        if self.stream_function is None:
            yield _aiter(events_for_response(await self.request(request)))
            return
        generator = self.stream_function(request)
        try:
            yield _text_as_deltas(generator, self.model_name)
        finally:
            aclose = getattr(generator, "aclose", None)
            if aclose is not None:
                await aclose()


async def _text_as_deltas(source: AsyncIterator[str | StreamEvent], model: str) -> AsyncIterator[StreamEvent]:
    finished = False
    tool_calls = False
    async for item in source:
        if isinstance(item, str):
            yield TextDelta(item)
            continue
        finished = finished or isinstance(item, StreamFinish)
        tool_calls = tool_calls or isinstance(item, ToolCallStart)
        yield item
    if not finished:
        yield UsageUpdate(Usage(requests=1))
        yield StreamFinish("tool_calls" if tool_calls else "stop", None, model)


def events_for_response(response: ModelResponse, *, chunk_words: bool = False) -> list[StreamEvent]:
    """The stream events whose aggregate is ``response`` (used by offline models)."""
    events: list[StreamEvent] = []
    for index, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            pieces = _words(part.text) if chunk_words else [part.text]
            events.extend(TextDelta(piece, index) for piece in pieces)
        elif isinstance(part, ThinkingPart):
            events.append(ThinkingDelta(part.text, index, part.signature, part.redacted))
        else:
            events.append(ToolCallStart(index, part.id, part.name))
            events.append(ToolCallArgsDelta(index, dumps(part.args)))
            events.append(ToolCallEnd(index))
    events.append(UsageUpdate(response.usage))
    events.append(StreamFinish(response.finish_reason, response.response_id, response.model))
    return events


async def _aiter(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def _words(text: str) -> list[str]:
    if not text:
        return [""]
    pieces = text.split(" ")
    return (
        [piece + " " for piece in pieces[:-1]] + [pieces[-1]]
        if pieces[-1]
        else [p + " " for p in pieces[:-1]]
    )


def _usage(request: ModelRequest, parts: list[AssistantPart]) -> Usage:
    """A plausible usage: about a token per word, plus a fixed overhead per request. Counted from
    the parts' text (no encoding of the history), so a long conversation stays cheap to test."""
    words_in = sum(_word_count(part) for message in request.messages for part in message.parts)
    words_in += len((request.instructions or "").split())
    return Usage(input_tokens=50 + words_in, output_tokens=sum(_word_count(p) for p in parts), requests=1)


def _word_count(part: object) -> int:
    if isinstance(part, TextPart | ThinkingPart):
        return len(part.text.split())
    if isinstance(part, ToolResultPart):
        return 2 + len(part.content.split())
    if isinstance(part, ToolCallPart):
        return 2 + len(dumps(part.args).split())
    return 1  # an image


_BRIEF = 60  # characters of each tool result shown in the offline answer


def offline_summary(results: Sequence[ToolResultPart]) -> str:
    """The offline answer after tool calls: says in words that no real model ran, which tools were called
    and what each returned (whitespace collapsed, cut to 60 characters)."""
    names = ", ".join(dict.fromkeys(r.name for r in results))
    shown = "; ".join(f"{r.name}{' failed' if r.is_error else ''}: {_brief(r.content)}" for r in results)
    return f"[test model] called {names}; no real model was used. Results: {shown}"


def _brief(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BRIEF else text[: _BRIEF - 3] + "..."


def schema_example(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A small value valid against a JSON schema (the subset pydantic emits)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return schema_example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return schema_example(options[0], defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {name: schema_example(props[name], defs) for name in required if name in props}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [schema_example(schema.get("items", {}), defs) for _ in range(count)]
    if kind == "string":
        return "a" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return max(0, schema.get("minimum", 0))
    if kind == "number":
        return float(max(0, schema.get("minimum", 0)))
    if kind == "boolean":
        return False
    return None
