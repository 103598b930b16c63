"""The model seam: one request call, one streaming call, typed stream events, usage.

A provider implements :class:`Model`. ``stream()`` is an async context manager (like
``httpx.AsyncClient.stream``) so the HTTP response is always closed, whether the consumer reads to the
end, breaks out early or is cancelled. Folding a stream's events with :class:`ResponseBuilder` gives
exactly the :class:`ModelResponse` that ``request()`` returns for the same provider answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, Protocol, TypeAlias, runtime_checkable

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from ..errors import ConfigError
from .messages import AssistantMessage, AssistantPart, Message, TextPart, ThinkingPart, ToolCallPart

__all__ = [
    "FinishReason",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OutputMode",
    "OutputSchema",
    "ResponseBuilder",
    "StreamEvent",
    "StreamFinish",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallArgsDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolDefinition",
    "Usage",
    "UsageUpdate",
    "check_timeout",
]

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]

OutputMode: TypeAlias = Literal["native", "prompted"]
"""How a model gives typed output; see :attr:`Model.output_mode`."""


@dataclass(slots=True)
class Usage:
    """Tokens and requests; ``a + b`` adds up across calls, operations and runs.

    ``input_tokens`` counts the whole prompt, cached parts included (as the OpenTelemetry GenAI
    conventions define it); ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it read
    from or written to the provider's prompt cache.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.requests + other.requests,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "requests": self.requests,
        }


class ModelSettings(TypedDict, total=False):
    """Request settings every provider maps to its own names (unsupported ones are ignored)."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    thinking_budget: int  # Anthropic extended thinking budget_tokens
    reasoning_effort: Literal["minimal", "low", "medium", "high"]  # OpenAI reasoning models
    tool_choice: Literal["auto", "none", "required"] | str  # a tool name forces that tool
    parallel_tool_calls: bool
    # Seconds: the deadline of a request, or the longest a stream may go without an event (see
    # docs/models.md, "Deadlines"). Positive and finite.
    timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    extra_body: dict[str, Any]  # merged into the provider's JSON body as is


@cache
def settings_adapter() -> TypeAdapter[ModelSettings]:
    """Validates a settings dict against :class:`ModelSettings` (types and bounds)."""
    return TypeAdapter(ModelSettings)


def check_timeout(value: Any, name: str = "model_settings['timeout']") -> float:
    """``value`` as a timeout in seconds, or a :class:`ConfigError` naming the setting: a timeout must be
    a positive, finite number (zero or a negative number would make every request fail at once)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(
            f"{name} must be a positive number of seconds, got {value!r:.40}; e.g. 60 for one minute"
        )
    return float(value)


@dataclass(slots=True)
class ToolDefinition:
    """What the model sees of a tool: its name, description and JSON schema of arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class OutputSchema:
    """Typed output requested from the model, for providers with native structured output."""

    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(slots=True)
class ModelRequest:
    """One model call. When ``output`` is set, a model whose ``output_mode`` is ``"native"`` answers
    with the output's JSON text as its text (OpenAI: ``response_format`` json_schema; Anthropic: a
    forced tool whose input is turned back into text), so the turn loop parses text either way."""

    messages: list[Message]
    instructions: str | None = None
    tools: list[ToolDefinition] = field(default_factory=list)
    settings: ModelSettings = field(default_factory=lambda: ModelSettings())
    output: OutputSchema | None = None


@dataclass(slots=True)
class ModelResponse:
    parts: list[AssistantPart]
    usage: Usage = field(default_factory=Usage)
    finish_reason: FinishReason = "stop"
    response_id: str | None = None
    model: str | None = None  # the model the provider says answered

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]

    def message(self) -> AssistantMessage:
        """The response as a history message (sharing the parts list: parts are never mutated)."""
        return AssistantMessage(self.parts)


# -- stream events ---------------------------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    text: str
    index: int = 0  # the content block this delta belongs to


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    index: int = 0
    signature: str | None = None  # arrives once, at the end of the block (Anthropic)
    redacted: str | None = None


@dataclass(slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallArgsDelta:
    index: int
    delta: str  # a fragment of the arguments' JSON text


@dataclass(slots=True)
class ToolCallEnd:
    index: int


@dataclass(slots=True)
class UsageUpdate:
    """Cumulative usage so far (providers report it at the start and the end of a stream)."""

    usage: Usage


@dataclass(slots=True)
class StreamFinish:
    finish_reason: FinishReason
    response_id: str | None = None
    model: str | None = None


StreamEvent: TypeAlias = (
    TextDelta | ThinkingDelta | ToolCallStart | ToolCallArgsDelta | ToolCallEnd | UsageUpdate | StreamFinish
)


class ResponseBuilder:
    """Folds stream events into the :class:`ModelResponse` the non-streaming call would return.

    Parts keep the order of their content-block ``index``; consecutive deltas of one block join.
    """

    __slots__ = ("_args", "_finish", "_parts", "usage")

    def __init__(self) -> None:
        self._parts: dict[int, TextPart | ThinkingPart | ToolCallPart] = {}
        self._args: dict[int, list[str]] = {}
        self._finish: StreamFinish | None = None
        self.usage = Usage()

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            part = self._parts.get(event.index)
            if isinstance(part, TextPart):
                part.text += event.text
            else:
                self._parts[event.index] = TextPart(event.text)
        elif isinstance(event, ThinkingDelta):
            part = self._parts.get(event.index)
            if not isinstance(part, ThinkingPart):
                part = self._parts[event.index] = ThinkingPart()
            part.text += event.text
            if event.signature is not None:
                part.signature = event.signature
            if event.redacted is not None:
                part.redacted = event.redacted
        elif isinstance(event, ToolCallStart):
            self._parts[event.index] = ToolCallPart(event.id, event.name)
            self._args[event.index] = []
        elif isinstance(event, ToolCallArgsDelta):
            self._args.setdefault(event.index, []).append(event.delta)
        elif isinstance(event, ToolCallEnd):
            pass
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        else:
            self._finish = event

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def build(self) -> ModelResponse:
        parts: list[AssistantPart] = []
        for index in sorted(self._parts):
            part = self._parts[index]
            if isinstance(part, ToolCallPart):
                part.args = parse_tool_args("".join(self._args.get(index, ())))
            parts.append(part)
        finish = self._finish or StreamFinish("stop")
        return ModelResponse(parts, self.usage, finish.finish_reason, finish.response_id, finish.model)


def parse_tool_args(text: str) -> dict[str, Any]:
    """Tool-call arguments from their JSON text. Malformed JSON is kept under ``__raw__`` so the turn
    loop can send the model a validation error instead of crashing."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"__raw__": text}
    return value if isinstance(value, dict) else {"__raw__": text}


@runtime_checkable
class Model(Protocol):
    """A chat model. Implementations are safe to share between tasks and sessions."""

    @property
    def provider(self) -> str: ...

    @property
    def model_name(self) -> str: ...

    @property
    def output_mode(self) -> OutputMode:
        """How the model gives typed output (``prompt(..., result=T)``).

        ``"native"``: the model honours :attr:`ModelRequest.output`, using the provider's structured
        output (OpenAI ``response_format``, an Anthropic forced tool), and answers with the output's JSON
        as its text. ``"prompted"``: the model ignores ``ModelRequest.output``; the turn loop describes the
        schema in the instructions instead and finds the JSON in the answer's text. Either way the loop
        validates the JSON and asks the model to repair it when it does not fit.
        """
        ...

    async def request(self, request: ModelRequest) -> ModelResponse: ...

    def stream(self, request: ModelRequest) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]: ...
