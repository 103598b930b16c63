"""The Anthropic Messages API (``POST /v1/messages``) over httpx, streaming and not.

Contract: folding :meth:`AnthropicModel.stream`'s events with
:class:`~pyflue.models.base.ResponseBuilder` gives exactly the :class:`ModelResponse` that
:meth:`AnthropicModel.request` returns for the same answer. A stream that ends before ``message_stop``,
an ``error`` event or an undecodable event raises :class:`~pyflue.errors.StreamError`; nothing returns a
silently truncated answer.

Prompt caching is automatic: ``cache_control`` breakpoints go on the last system block, the last tool
and the last cacheable block of the conversation tail (3 of the API's 4), so a growing conversation
re-reads its cached prefix on every turn.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ..errors import (
    AuthenticationError,
    ConfigError,
    ContextOverflowError,
    InvalidRequestError,
    ModelAPIError,
    OverloadedError,
    RateLimitError,
    StreamError,
)
from . import _shape
from ._http import EventReader, HTTPProvider, StreamStart, describe_error, error_class
from .base import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OutputMode,
    OutputSchema,
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
from .limits import model_limits
from .messages import (
    AssistantPart,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
)
from .sse import SSEEvent, SSEParser

__all__ = ["AnthropicModel", "StreamDecoder", "decode_message", "default_max_tokens"]

_PATH = "/v1/messages"
_API_VERSION = "2023-06-01"
_EPHEMERAL = {"type": "ephemeral"}
_CACHEABLE = frozenset({"text", "image", "tool_result", "tool_use", "document"})

# The HTTP status each documented error type comes with, for error bodies that arrive with another
# status (a JSON error answered to a streaming request with 200).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def default_max_tokens(model_name: str) -> int:
    """``max_tokens`` sent when the settings name none (the API requires one): the model's maximum output
    from :func:`~pyflue.models.limits.model_limits`, so long answers finish instead of stopping at
    "length"."""
    return model_limits(model_name).max_output


class AnthropicModel(HTTPProvider):
    """Claude through the Messages API. Safe to share between tasks: it holds no per-call state."""

    provider = "anthropic"
    request_id_header = "request-id"
    output_mode: OutputMode = "native"

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": _API_VERSION, "content-type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return {**headers, **self.extra_headers}

    async def request(self, request: ModelRequest) -> ModelResponse:
        payload = self._payload(request, stream=False)
        body = await self._post_json(_PATH, payload, request.settings.get("timeout"))
        if isinstance(body, dict) and (body.get("type") == "error" or "error" in body):
            raise self._api_error(200, body, None)  # a proxy that answered an error with status 200
        return self.parse_response(body, _output_name(request))

    def parse_response(self, body: Any, output_name: str | None = None) -> ModelResponse:
        """The :class:`ModelResponse` of a Messages API body; a typed :class:`ModelAPIError` naming the
        field when the body has another shape."""
        try:
            return decode_message(body, output_name)
        except _shape.WrongShape as exc:
            raise ModelAPIError(
                f"anthropic answered with an unexpected shape: {exc}; is {self.base_url} the Messages API?",
                provider=self.provider,
                status_code=200,
                body=body,
            ) from None

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        payload = self._payload(request, stream=True)
        async with self._post_stream(_PATH, payload, request.settings.get("timeout")) as start:
            request_id = start.response.headers.get(self.request_id_header)
            events = self._events(start, StreamDecoder(_output_name(request), request_id))
            try:
                yield events
            finally:
                await events.aclose()

    async def _events(self, start: StreamStart, decoder: StreamDecoder) -> AsyncGenerator[StreamEvent, None]:
        response = start.response
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            await self._json_instead_of_stream(response, decoder)
        parser = SSEParser()
        reader = EventReader(start, parser, self.stalled)
        seen = False
        try:
            while (batch := await reader.batch()) is not None:
                seen = True
                for sse in batch:
                    for event in decoder.handle(sse):
                        yield event
                    if decoder.finished:
                        return
        except httpx.TransportError as exc:
            raise decoder.error(
                f"the connection was cut before message_stop ({describe_error(exc)}); "
                "the answer is incomplete, retry the request"
            ) from exc
        if not seen and parser.truncated:
            raise decoder.error(
                f"the server answered with something other than an event stream "
                f"(content-type {content_type or 'missing'!r}); check ANTHROPIC_BASE_URL / base_url"
            )
        where = "in the middle of an event" if parser.truncated else "without message_stop"
        raise decoder.error(
            f"the stream was cut: it ended {where}; the answer is incomplete, retry the request"
        )

    async def _json_instead_of_stream(self, response: httpx.Response, decoder: StreamDecoder) -> None:
        """A JSON answer to a streaming request: the typed API error it describes, or else a StreamError
        saying the server does not stream."""
        await response.aread()
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict) and (body.get("type") == "error" or isinstance(body.get("error"), dict)):
            raise self._api_error(response.status_code, body, decoder.request_id)
        shown = response.text if len(response.text) <= 200 else response.text[:197] + "..."
        raise decoder.error(
            f"the server answered a streaming request with JSON instead of an event stream: {shown!r}; "
            "a proxy at the base URL may not support streaming"
        )

    def _api_error(self, status: int, body: Any, request_id: str | None) -> ModelAPIError:
        """Reads ``{"type": "error", "error": {"type", "message"}, "request_id"}``; a prompt that does not
        fit (413 ``request_too_large``, or a 400 saying the prompt is too long) is a
        :class:`ContextOverflowError` so compaction can catch it."""
        error = body.get("error") if isinstance(body, dict) else None
        error_type = error.get("type") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = body.strip()[:500] if isinstance(body, str) and body.strip() else "no error message"
        if request_id is None and isinstance(body, dict) and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
        lowered = message.lower()
        overflow = (
            status == 413
            or error_type == "request_too_large"
            or (status == 400 and ("prompt is too long" in lowered or "exceed context limit" in lowered))
        )
        effective = _ERROR_STATUS.get(error_type or "", status) if status < 400 else status
        cls = ContextOverflowError if overflow else error_class(effective, error_type)
        text = f"anthropic HTTP {status} {error_type or 'error'}: {message}; {_advice(cls, error_type)}"
        if request_id:
            text += f" (request id {request_id})"
        return cls(
            text,
            provider=self.provider,
            status_code=status,
            error_type=error_type,
            request_id=request_id,
            body=body,
        )

    # -- request mapping ---------------------------------------------------------------------------

    def _payload(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        settings = request.settings
        budget = settings.get("thinking_budget")
        output = request.output
        system = [_text(request.instructions)] if request.instructions else []
        if output is not None and budget:
            # Thinking forbids forced tool use, so the output tool is offered and asked for instead.
            system.append(
                _text(f"Give your final answer by calling the `{output.name}` tool, with no other text.")
            )
        tools = [_tool(t.name, t.description, t.parameters) for t in request.tools]
        if output is not None:
            description = output.description or "Give the final answer by calling this tool."
            tools.append(_tool(output.name, description, output.schema))
        messages = _messages(request.messages)

        payload: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": settings.get("max_tokens") or default_max_tokens(self.model_name),
        }
        if system:
            system[-1]["cache_control"] = dict(_EPHEMERAL)
            payload["system"] = system
        if tools:
            tools[-1]["cache_control"] = dict(_EPHEMERAL)
            payload["tools"] = tools
            choice = _tool_choice(settings, output, bool(request.tools), bool(budget))
            if choice is not None:
                payload["tool_choice"] = choice
        _mark_tail(messages)
        payload["messages"] = messages
        if "temperature" in settings:
            payload["temperature"] = settings["temperature"]
        if "top_p" in settings:
            payload["top_p"] = settings["top_p"]
        if settings.get("stop"):
            payload["stop_sequences"] = list(settings["stop"])
        if budget:
            payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if stream:
            payload["stream"] = True
        payload.update(settings.get("extra_body") or {})
        return payload


def _output_name(request: ModelRequest) -> str | None:
    return request.output.name if request.output is not None else None


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "input_schema": schema}
    if description:
        tool["description"] = description
    return tool


def _tool_choice(
    settings: ModelSettings, output: OutputSchema | None, has_tools: bool, thinking: bool
) -> dict[str, Any] | None:
    """The API's ``tool_choice``. Typed output forces its tool (``any`` when other tools may still be
    called first, so the agent can use them); with thinking the API allows only ``auto``/``none``."""
    choice = settings.get("tool_choice")
    result: dict[str, Any] | None
    if output is not None and thinking:
        result = {"type": "auto"}
    elif output is not None:
        if not has_tools or choice in ("none", output.name):
            result = {"type": "tool", "name": output.name}
        elif choice in (None, "auto", "required"):
            result = {"type": "any"}
        else:
            result = {"type": "tool", "name": choice}
    elif choice is None:
        result = None
    elif choice in ("auto", "none"):
        result = {"type": choice}
    elif choice == "required":
        result = {"type": "any"}
    else:
        result = {"type": "tool", "name": choice}
    if settings.get("parallel_tool_calls") is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """History as API messages. Consecutive messages of one role merge (so the results of one turn's
    tool calls travel in one user message), and a user message's ``tool_result`` blocks go first, as the
    API requires."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            blocks = [_user_block(part) for part in message.parts]
        else:
            blocks = [_assistant_block(part) for part in message.parts]
        blocks = [b for b in blocks if b is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": message.role, "content": blocks})
    for item in out:
        if item["role"] == "user":
            item["content"].sort(key=lambda block: block["type"] != "tool_result")
    return out


def _user_block(part: TextPart | ImagePart | ToolResultPart) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return _text(part.text) if part.text else None  # the API rejects empty text blocks
    if isinstance(part, ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id, "content": part.content}
        if part.is_error:
            block["is_error"] = True
        return block
    if part.data is not None:
        data = base64.b64encode(part.data).decode("ascii")
        return {"type": "image", "source": {"type": "base64", "media_type": part.mime_type, "data": data}}
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    raise ConfigError("an image part needs data= (bytes) or url=")


def _assistant_block(part: AssistantPart) -> dict[str, Any] | None:
    """Thinking goes back unchanged with its signature, as the API verifies it; thinking without one
    (another provider's, or an offline model's) cannot be verified, so it is left out."""
    if isinstance(part, TextPart):
        return _text(part.text) if part.text else None
    if isinstance(part, ThinkingPart):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        return None
    return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.args}


def _mark_tail(messages: list[dict[str, Any]]) -> None:
    """A cache breakpoint on the conversation's last cacheable block (thinking blocks cannot carry one)."""
    if not messages:
        return
    for block in reversed(messages[-1]["content"]):
        if block["type"] in _CACHEABLE:
            block["cache_control"] = dict(_EPHEMERAL)
            return


# -- response mapping ------------------------------------------------------------------------------


def _usage(raw: dict[str, Any], where: str = "usage") -> Usage:
    """``input_tokens`` is the whole prompt: the API's uncached input plus cache reads and writes."""
    cache_read = _shape.count(raw.get("cache_read_input_tokens"), f"{where}.cache_read_input_tokens")
    cache_write = _shape.count(raw.get("cache_creation_input_tokens"), f"{where}.cache_creation_input_tokens")
    return Usage(
        input_tokens=_shape.count(raw.get("input_tokens"), f"{where}.input_tokens")
        + cache_read
        + cache_write,
        output_tokens=_shape.count(raw.get("output_tokens"), f"{where}.output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        requests=1,
    )


def _finish(stop_reason: Any, output_seen: bool, calls_seen: bool) -> FinishReason:
    """A typed-output answer arrives as a tool call but is a final answer: "stop", unless real tool
    calls came with it."""
    finish = _STOP_REASONS.get(stop_reason, "other") if isinstance(stop_reason, str) else "other"
    if finish == "tool_calls" and output_seen and not calls_seen:
        return "stop"
    return finish


def decode_message(body: Any, output_name: str | None = None) -> ModelResponse:
    """A Messages API ``message`` as a :class:`ModelResponse`; :class:`_shape.WrongShape` names the field
    of a body with another shape."""
    message = _shape.obj(body, "the body")
    parts: list[AssistantPart] = []
    output_seen = calls_seen = False
    if "content" not in message:
        raise _shape.WrongShape("content", None, "an array of content blocks")
    for i, raw in enumerate(_shape.items(message["content"], "content")):
        where = f"content[{i}]"
        block = _shape.obj(raw, where)
        kind = block.get("type")
        if kind == "text":
            text = _shape.text(block.get("text"), f"{where}.text")
            if text:
                parts.append(TextPart(text))
        elif kind == "thinking":
            thinking = _shape.text(block.get("thinking"), f"{where}.thinking") or ""
            parts.append(
                ThinkingPart(thinking, _shape.text(block.get("signature"), f"{where}.signature") or None)
            )
        elif kind == "redacted_thinking":
            parts.append(ThinkingPart(redacted=_shape.text(block.get("data"), f"{where}.data") or ""))
        elif kind == "tool_use":
            raw_input = block.get("input")
            args: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
            name = _shape.text(block.get("name"), f"{where}.name")
            if output_name is not None and name == output_name:
                parts.append(TextPart(json.dumps(args)))
                output_seen = True
            else:
                call_id = _shape.text(block.get("id"), f"{where}.id")
                if not call_id or not name:
                    raise _shape.WrongShape(where, block, "a tool_use block with an id and a name")
                parts.append(ToolCallPart(call_id, name, args))
                calls_seen = True
    stop_reason = _shape.text(message.get("stop_reason"), "stop_reason")
    return ModelResponse(
        parts,
        _usage(_shape.obj(message.get("usage"), "usage")),
        _finish(stop_reason, output_seen, calls_seen),
        _shape.text(message.get("id"), "id"),
        _shape.text(message.get("model"), "model"),
    )


# -- streaming -------------------------------------------------------------------------------------


class StreamDecoder:
    """Turns the API's SSE events into stream events: a pure state machine, one event at a time.

    The typed-output tool's argument fragments are buffered and emitted as one :class:`TextDelta` of
    ``json.dumps(input)`` at the block's end, which is exactly what the non-streaming mapping returns.
    """

    __slots__ = (
        "_calls_seen",
        "_output_buffer",
        "_output_index",
        "_output_name",
        "_output_seen",
        "_stop_reason",
        "_tool_indexes",
        "_usage",
        "finished",
        "model",
        "request_id",
        "response_id",
    )

    def __init__(self, output_name: str | None, request_id: str | None) -> None:
        self._output_name = output_name
        self.request_id = request_id
        self._usage: dict[str, Any] = {}
        self._stop_reason: Any = None
        self._output_index: int | None = None
        self._output_buffer: list[str] = []
        self._output_seen = False
        self._calls_seen = False
        self._tool_indexes: set[int] = set()
        self.finished = False
        self.response_id: str | None = None
        self.model: str | None = None

    def error(self, message: str, error_type: str | None = None) -> StreamError:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return StreamError(
            f"anthropic stream: {message}{suffix}", provider="anthropic", error_type=error_type
        )

    def handle(self, sse: SSEEvent) -> list[StreamEvent]:
        if sse.event == "ping":
            return []
        try:
            data = json.loads(sse.data)
        except ValueError:
            raise self.error(f"malformed JSON in a {sse.event!r} event: {sse.data[:200]!r}") from None
        if not isinstance(data, dict):
            raise self.error(f"a {sse.event!r} event is not a JSON object: {sse.data[:200]!r}")
        try:
            return self._handle(data.get("type") or sse.event, data)
        except _shape.WrongShape as exc:
            raise self.error(f"a {sse.event!r} event of an unexpected shape: {exc}") from None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise self.error(f"unexpected {sse.event!r} event {sse.data[:200]!r} ({exc!r})") from None

    def _handle(self, kind: str, data: dict[str, Any]) -> list[StreamEvent]:
        if kind == "content_block_delta":  # the hot path: checked inline
            index, delta = data.get("index"), data.get("delta")
            if type(index) is not int:
                raise _shape.WrongShape("index", index, "an integer")
            return self._delta(index, delta if type(delta) is dict else _shape.obj(delta, "delta"))
        if kind == "content_block_start":
            return self._start(_index(data), _shape.obj(data.get("content_block"), "content_block"))
        if kind == "content_block_stop":
            return self._stop(_index(data))
        if kind == "message_start":
            message = _shape.obj(data.get("message"), "message")
            self.response_id = _shape.text(message.get("id"), "message.id")
            self.model = _shape.text(message.get("model"), "message.model")
            self._usage = dict(_shape.obj(message.get("usage"), "message.usage"))
            return [UsageUpdate(_usage(self._usage, "message.usage"))]
        if kind == "message_delta":
            delta = _shape.obj(data.get("delta"), "delta")
            if "stop_reason" in delta:
                self._stop_reason = _shape.text(delta["stop_reason"], "delta.stop_reason")
            usage = _shape.obj(data.get("usage"), "usage")
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            return [UsageUpdate(_usage(self._usage))]
        if kind == "message_stop":
            self.finished = True
            finish = _finish(self._stop_reason, self._output_seen, self._calls_seen)
            return [StreamFinish(finish, self.response_id, self.model)]
        if kind == "error":
            info = data.get("error")
            error: dict[str, Any] = info if isinstance(info, dict) else {}
            error_type = error.get("type") if isinstance(error.get("type"), str) else None
            detail = error.get("message") if isinstance(error.get("message"), str) else "no error message"
            raise self.error(f"the API sent an error mid-answer: {error_type}: {detail}; retry", error_type)
        return []  # unknown event types are allowed by the API's versioning policy

    def _start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "text":
            text = _shape.text(block.get("text"), "content_block.text")
            return [TextDelta(text, index)] if text else []
        if kind == "thinking":
            thinking = _shape.text(block.get("thinking"), "content_block.thinking") or ""
            signature = _shape.text(block.get("signature"), "content_block.signature") or None
            return [ThinkingDelta(thinking, index, signature)]
        if kind == "redacted_thinking":
            return [
                ThinkingDelta("", index, redacted=_shape.text(block.get("data"), "content_block.data") or "")
            ]
        if kind != "tool_use":
            return []
        initial = json.dumps(block["input"]) if block.get("input") else ""
        name = _shape.text(block.get("name"), "content_block.name")
        if self._output_name is not None and name == self._output_name:
            self._output_index = index
            self._output_buffer = [initial]
            self._output_seen = True
            return []
        self._tool_indexes.add(index)
        self._calls_seen = True
        call_id = _shape.text(block.get("id"), "content_block.id")
        if not call_id or not name:
            raise _shape.WrongShape("content_block", block, "a tool_use block with an id and a name")
        start: list[StreamEvent] = [ToolCallStart(index, call_id, name)]
        return [*start, ToolCallArgsDelta(index, initial)] if initial else start

    def _delta(self, index: int, delta: dict[str, Any]) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if type(text) is not str:
                raise _shape.WrongShape("delta.text", text, "a string")
            return [TextDelta(text, index)] if text else []
        if kind == "thinking_delta":
            return [ThinkingDelta(_shape.text(delta.get("thinking"), "delta.thinking") or "", index)]
        if kind == "signature_delta":
            return [ThinkingDelta("", index, _shape.text(delta.get("signature"), "delta.signature") or None)]
        if kind == "input_json_delta":
            fragment = _shape.text(delta.get("partial_json"), "delta.partial_json") or ""
            if index == self._output_index:
                self._output_buffer.append(fragment)
                return []
            return [ToolCallArgsDelta(index, fragment)] if fragment else []
        return []

    def _stop(self, index: int) -> list[StreamEvent]:
        if index == self._output_index:
            self._output_index = None
            text = "".join(self._output_buffer)
            self._output_buffer = []
            try:
                text = json.dumps(json.loads(text) if text.strip() else {})
            except ValueError:
                pass  # kept as sent: the turn loop's output validation asks the model to repair it
            return [TextDelta(text, index)]
        if index in self._tool_indexes:
            return [ToolCallEnd(index)]
        return []


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    if type(index) is not int:
        raise _shape.WrongShape("index", index, "an integer")
    return index


def _advice(cls: type[ModelAPIError], error_type: str | None) -> str:
    if cls is ContextOverflowError:
        return "the prompt does not fit: shorten the conversation (compact it) or use a larger-context model"
    if cls is AuthenticationError:
        return "check ANTHROPIC_API_KEY (or api_key=) and what the key may use"
    if cls is RateLimitError:
        return "rate limited after every retry: wait, lower concurrency, or raise max_retries"
    if cls is OverloadedError:
        return "Anthropic is overloaded or failing: retry later or use another model"
    if error_type == "not_found_error":
        return "check the model name"
    if cls is InvalidRequestError:
        return "fix the request as the message says"
    return "retry later"
