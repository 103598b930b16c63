"""OpenAI Chat Completions over httpx, for OpenAI itself and OpenAI-compatible servers.

One class serves ``openai`` and the compatible endpoints the registry names (Ollama, LM Studio, vLLM,
OpenRouter, Gemini's compatibility layer, any ``openai-compatible`` URL): they all speak
``POST {base_url}/chat/completions``. The differences that matter are handled here: compatible servers
take ``max_tokens`` where OpenAI wants ``max_completion_tokens``; some return reasoning text in
``reasoning_content`` / ``reasoning``; some report errors without OpenAI's ``{"error": {...}}`` wrapper
(vLLM answers ``{"object": "error", "message": ...}``, Gemini wraps the error in a list).

Streaming and non-streaming give the same :class:`~pyflue.models.base.ModelResponse`: parts come out in
the order thinking, text, tool calls, and the stream's content-block indexes follow that order
(thinking 0, text 1, tool calls from 2). A stream that ends before ``data: [DONE]`` is a
:class:`~pyflue.errors.StreamError`, never a silently truncated answer.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ConfigError, ContextOverflowError, InvalidRequestError, ModelAPIError, StreamError
from . import _shape
from ._http import DEFAULT_TIMEOUT, EventReader, HTTPProvider, StreamStart, describe_error, error_class
from .base import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    OutputMode,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
    parse_tool_args,
)
from .messages import (
    AssistantMessage,
    AssistantPart,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    dumps,
)
from .sse import SSEParser

__all__ = ["ChunkDecoder", "OpenAIChatModel"]

_PATH = "/chat/completions"

# Content-block indexes of the stream events, chosen so that the parts fold into the order the
# non-streaming mapping produces: thinking, then text, then tool calls in the order they appear.
_THINKING_BLOCK = 0
_TEXT_BLOCK = 1
_FIRST_TOOL_BLOCK = 2

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated functions API
    "content_filter": "content_filter",
}

# OpenAI says code "context_length_exceeded"; vLLM and OpenRouter only say it in the message
# ("This model's maximum context length is 8192 tokens. However, you requested ...").
_OVERFLOW_MESSAGE = re.compile(
    r"maximum context length|context[_ ]length[_ ]exceeded|exceeds? the (?:model's )?context window", re.I
)
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class OpenAIChatModel(HTTPProvider):
    """A chat model behind the OpenAI Chat Completions API.

    ``provider_name`` is what :attr:`provider` reports (``"openai"``, ``"ollama"``, ...) and decides the
    few wire differences between OpenAI and compatible servers. ``Authorization: Bearer`` is sent only
    when ``api_key`` is set, since local servers (Ollama, LM Studio) need none.
    """

    output_mode: OutputMode = "native"

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1",
        provider_name: str = "openai",
        max_retries: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        retry_base_delay: float = 0.5,
    ) -> None:
        super().__init__(
            model_name,
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
            headers=headers,
            http_client=http_client,
            retry_base_delay=retry_base_delay,
        )
        # An instance attribute shadows HTTPProvider's class default; it also keys the shared client pool,
        # so each named endpoint gets its own connections.
        self.provider = provider_name

    # -- the Model protocol ------------------------------------------------------------------------

    async def request(self, request: ModelRequest) -> ModelResponse:
        body = await self._post_json(
            _PATH, self._payload(request, stream=False), request.settings.get("timeout")
        )
        return self.parse_response(body)

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Stream the answer as typed events; the HTTP response is closed when the block exits."""
        payload = self._payload(request, stream=True)
        async with self._post_stream(_PATH, payload, request.settings.get("timeout")) as start:
            events = self._events(start)
            try:
                yield events
            finally:
                await events.aclose()

    # -- HTTP hooks --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        headers.update(self.extra_headers)
        return headers

    def _api_error(self, status: int, body: Any, request_id: str | None) -> ModelAPIError:
        """A typed error from an error answer: OpenAI's ``{"error": {message, type, param, code}}``,
        vLLM's unwrapped ``{"message", "type", "code"}``, Gemini's ``[{"error": ...}]``, a bare
        ``{"error": "text"}`` or a plain-text body."""
        message, error_type, code = _error_fields(body)
        cls = error_class(status, error_type)
        overflow = code == "context_length_exceeded" or bool(message and _OVERFLOW_MESSAGE.search(message))
        if overflow and (cls is InvalidRequestError or cls is ModelAPIError or cls is ContextOverflowError):
            cls = ContextOverflowError
        text = f"{self.provider} returned HTTP {status}"
        if message:
            text += f": {message}"
        hint = _HINTS.get(cls)
        if hint:
            text += f" ({hint})"
        if request_id:
            text += f" [request id {request_id}]"
        return cls(
            text,
            provider=self.provider,
            status_code=status,
            error_type=code or error_type,
            request_id=request_id,
            body=body,
        )

    # -- request mapping ---------------------------------------------------------------------------

    def _payload(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        settings = request.settings
        payload: dict[str, Any] = {"model": self.model_name, "messages": _messages(request)}
        if request.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
            # OpenAI rejects tool_choice and parallel_tool_calls in a request without tools.
            if "tool_choice" in settings:
                payload["tool_choice"] = _tool_choice(settings["tool_choice"])
            if "parallel_tool_calls" in settings:
                payload["parallel_tool_calls"] = settings["parallel_tool_calls"]
        if "max_tokens" in settings:
            # OpenAI deprecated max_tokens (reasoning models reject it); compatible servers mostly know
            # only max_tokens.
            key = "max_completion_tokens" if self.provider == "openai" else "max_tokens"
            payload[key] = settings["max_tokens"]
        for name in ("temperature", "top_p", "stop", "reasoning_effort"):
            if name in settings:
                payload[name] = settings[name]
        if request.output is not None:
            schema: dict[str, Any] = {
                "name": _SCHEMA_NAME.sub("_", request.output.name)[:64] or "output",
                "schema": request.output.schema,
                "strict": False,  # strict mode rejects ordinary pydantic schemas (optional fields, defaults)
            }
            if request.output.description:
                schema["description"] = request.output.description
            payload["response_format"] = {"type": "json_schema", "json_schema": schema}
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        payload.update(settings.get("extra_body") or {})
        return payload

    # -- response mapping --------------------------------------------------------------------------

    def parse_response(self, body: Any) -> ModelResponse:
        """The :class:`ModelResponse` of a ``chat.completion`` body; a typed :class:`ModelAPIError`
        naming the field when the body has another shape."""
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if isinstance(body, dict | list) and _error_fields(body)[0]:
                raise self._api_error(200, body, None)  # some proxies answer 200 with an error body
            raise ModelAPIError(
                f"{self.provider} answered without choices: {_short(body)}",
                provider=self.provider,
                status_code=200,
                body=body,
            )
        try:
            return _completion(body, choices[0])
        except _shape.WrongShape as exc:
            raise ModelAPIError(
                f"{self.provider} answered with an unexpected shape: {exc}; is {self.base_url} an "
                "OpenAI-compatible endpoint?",
                provider=self.provider,
                status_code=200,
                body=body,
            ) from None

    async def _events(self, start: StreamStart) -> AsyncGenerator[StreamEvent, None]:
        response = start.response
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            # A server that ignored ``stream: true`` (or a proxy that answered 200 with an error body).
            await response.aread()
            message = _error_fields(_json_or_text(response.text))[0] or _short(response.text)
            raise StreamError(
                f"{self.provider} answered a streaming request with JSON, not an event stream: {message}",
                provider=self.provider,
            )
        state = ChunkDecoder(self.provider)
        parser = SSEParser()
        reader = EventReader(start, parser, self.stalled)
        try:
            while (batch := await reader.batch()) is not None:
                for sse in batch:
                    data = sse.data.strip()
                    if data == "[DONE]":
                        for event in state.finish():
                            yield event
                        return
                    if not data:
                        continue
                    for event in state.feed(_chunk(self.provider, sse.event, data)):
                        yield event
        except httpx.TransportError as exc:
            raise StreamError(
                f"the {self.provider} stream was cut before it finished ({describe_error(exc)}); "
                "retry the request",
                provider=self.provider,
            ) from exc
        where = " in the middle of an event" if parser.truncated else ""
        raise StreamError(
            f"the {self.provider} stream was cut{where}: it ended without 'data: [DONE]'; retry the request",
            provider=self.provider,
        )


def _chunk(provider: str, event: str, data: str) -> dict[str, Any]:
    """One ``data:`` payload as a chunk object; an error payload or malformed data is a StreamError."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise StreamError(
            f"{provider} sent malformed stream data: {_short(data)}", provider=provider
        ) from None
    if not isinstance(chunk, dict):
        raise StreamError(f"{provider} sent unexpected stream data: {_short(data)}", provider=provider)
    if chunk.get("error") or event == "error":
        error, error_type, code = _error_fields(chunk)
        raise StreamError(
            f"{provider} reported an error mid-stream: {error or _short(data)}",
            provider=provider,
            error_type=code or error_type,
        )
    return chunk


_HINTS: dict[type[ModelAPIError], str] = {
    ContextOverflowError: "the prompt does not fit the model's context window; shorten or compact it",
}


# -- request helpers -------------------------------------------------------------------------------


def _messages(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.instructions:
        out.append({"role": "system", "content": request.instructions})
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            out.append(_assistant_message(message))
        else:
            out.extend(_user_messages(message))
    return out


def _user_messages(message: UserMessage) -> list[dict[str, Any]]:
    """Tool results become ``role: tool`` messages, first, because the API wants them right after the
    assistant message that made the calls; text and images follow as one user message."""
    out: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart):
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": part.content})
        elif isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
    if len(content) == 1 and content[0]["type"] == "text":
        out.append({"role": "user", "content": content[0]["text"]})  # the plain form every server accepts
    elif content:
        out.append({"role": "user", "content": content})
    return out


def _image_url(part: ImagePart) -> str:
    if part.data is not None:
        return f"data:{part.mime_type};base64,{base64.b64encode(part.data).decode('ascii')}"
    if part.url:
        return part.url
    raise ConfigError("an image part needs data= (bytes) or url=")


def _assistant_message(message: AssistantMessage) -> dict[str, Any]:
    """Text and tool calls; thinking is dropped, since Chat Completions has no field to send it back."""
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": _arguments_json(p.args)}}
        for p in message.parts
        if isinstance(p, ToolCallPart)
    ]
    out: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    return out


def _arguments_json(args: dict[str, Any]) -> str:
    """Arguments as JSON text; malformed ones (kept under ``__raw__``) go back as the model wrote them."""
    raw = args.get("__raw__")
    if len(args) == 1 and isinstance(raw, str):
        return raw
    return dumps(args)


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- response helpers ------------------------------------------------------------------------------


def _completion(body: dict[str, Any], choice: dict[str, Any]) -> ModelResponse:
    message = _shape.obj(choice.get("message"), "choices[0].message")
    parts: list[AssistantPart] = []
    reasoning = _reasoning(message)
    if reasoning:
        parts.append(ThinkingPart(reasoning))
    text = _content_text(message.get("content"), "choices[0].message.content") or _content_text(
        message.get("refusal"), "choices[0].message.refusal"
    )
    if text:
        parts.append(TextPart(text))
    calls = _shape.items(message.get("tool_calls"), "choices[0].message.tool_calls")
    for position, raw in enumerate(calls):
        where = f"choices[0].message.tool_calls[{position}]"
        call = _shape.obj(raw, where)
        function = _shape.obj(call.get("function"), f"{where}.function")
        parts.append(
            ToolCallPart(
                _shape.text(call.get("id"), f"{where}.id") or _fallback_call_id(position),
                _shape.text(function.get("name"), f"{where}.function.name") or "",
                parse_tool_args(_arguments_text(function.get("arguments"), f"{where}.function.arguments")),
            )
        )
    usage = body.get("usage")
    return ModelResponse(
        parts,
        _usage(usage, "usage") if usage is not None else Usage(requests=1),
        _finish_reason(
            _shape.text(choice.get("finish_reason"), "choices[0].finish_reason"),
            any(isinstance(p, ToolCallPart) for p in parts),
        ),
        _shape.text(body.get("id"), "id") or None,
        _shape.text(body.get("model"), "model") or None,
    )


def _usage(raw: Any, where: str) -> Usage:
    """``prompt_tokens`` already includes the cached tokens, as :class:`Usage` defines input_tokens."""
    usage = _shape.obj(raw, where)
    details = _shape.obj(usage.get("prompt_tokens_details"), f"{where}.prompt_tokens_details")
    return Usage(
        input_tokens=_shape.count(usage.get("prompt_tokens"), f"{where}.prompt_tokens"),
        output_tokens=_shape.count(usage.get("completion_tokens"), f"{where}.completion_tokens"),
        cache_read_tokens=_shape.count(
            details.get("cached_tokens"), f"{where}.prompt_tokens_details.cached_tokens"
        ),
        requests=1,
    )


def _finish_reason(raw: str | None, has_tool_calls: bool) -> FinishReason:
    """The API's finish reason; some compatible servers say ``stop`` after tool calls, which would end
    the turn loop too early, so tool calls win over ``stop``."""
    if raw is None:
        return "tool_calls" if has_tool_calls else "stop"
    reason = _FINISH_REASONS.get(raw, "other")
    return "tool_calls" if reason == "stop" and has_tool_calls else reason


def _reasoning(delta: dict[str, Any]) -> str:
    """Reasoning text of compatible servers: ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning``
    (OpenRouter, newer vLLM); a vendor extension, so another shape is ignored rather than refused."""
    value = delta.get("reasoning_content")
    if not isinstance(value, str) or not value:
        value = delta.get("reasoning")
    return value if isinstance(value, str) else ""


def _content_text(content: Any, where: str) -> str:
    """Text content: a string, or (a few servers) a list of content parts whose text parts join."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        out: list[str] = []
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                out.append(_shape.text(part.get("text"), f"{where}[{i}].text") or "")
        return "".join(out)
    raise _shape.WrongShape(where, content, "a string or a list of content parts")


def _arguments_text(arguments: Any, where: str) -> str:
    """Arguments as JSON text: a string, or (a few servers) an object."""
    if arguments is None or isinstance(arguments, str):
        return arguments or ""
    if isinstance(arguments, dict):
        return dumps(arguments)
    raise _shape.WrongShape(where, arguments, "a JSON string")


def _fallback_call_id(position: int) -> str:
    """An id for a tool call a server sent without one (the result must name some id)."""
    return f"call_{position}"


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """``(message, type, code)`` of an error body in any of the shapes servers send."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        return body.strip() or None, None, None
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    if isinstance(error, str):
        return error, None, None
    info: dict[str, Any] = error if isinstance(error, dict) else body
    message, kind, code = info.get("message"), info.get("type"), info.get("code")
    return (
        message if isinstance(message, str) and message else None,
        kind if isinstance(kind, str) and kind else None,
        code if isinstance(code, str) and code else None,  # vLLM's code is the HTTP status, an int
    )


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# -- stream folding --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    block: int
    id: str = ""
    name: str = ""
    pending: list[str] = field(default_factory=list)  # argument fragments that came before id and name
    started: bool = False
    ended: bool = False


class ChunkDecoder:
    """Turns ``chat.completion.chunk`` objects into stream events; a chunk of another shape is a
    :class:`StreamError` naming the field.

    Tool-call deltas are matched by their ``index``; a call starts once its id and name are known
    (OpenAI sends both in the first delta) and its argument fragments follow. Servers that reuse one
    index for several calls (a new ``id`` at a known index) or omit the index get a new call per id.
    """

    __slots__ = ("_by_index", "_calls", "_finish", "_model", "_provider", "_response_id", "_usage")

    def __init__(self, provider: str = "openai") -> None:
        self._provider = provider
        self._calls: list[_Call] = []
        self._by_index: dict[int, _Call] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._response_id: str | None = None
        self._model: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        try:
            return self._feed(chunk)
        except _shape.WrongShape as exc:
            raise StreamError(
                f"{self._provider} sent a stream chunk of an unexpected shape: {exc}; is this an "
                "OpenAI-compatible endpoint?",
                provider=self._provider,
            ) from None

    def _feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        self._response_id = self._response_id or _shape.text(chunk.get("id"), "id") or None
        self._model = self._model or _shape.text(chunk.get("model"), "model") or None
        events: list[StreamEvent] = []
        choices = chunk.get("choices")  # the hot path: shapes checked inline, _shape names what is wrong
        for choice in choices if type(choices) is list else _shape.items(choices, "choices"):
            if type(choice) is not dict or choice.get("index", 0) != 0:
                continue  # only the first choice (PyFlue never asks for n > 1)
            delta = choice.get("delta")
            if type(delta) is not dict:
                delta = _shape.obj(delta, "choices[0].delta")
            reasoning = _reasoning(delta)
            if reasoning:
                events.append(ThinkingDelta(reasoning, _THINKING_BLOCK))
            text = _content_text(delta.get("content"), "choices[0].delta.content") or _content_text(
                delta.get("refusal"), "choices[0].delta.refusal"
            )
            if text:
                events.append(TextDelta(text, _TEXT_BLOCK))
            calls = delta.get("tool_calls")
            if calls is not None:
                for i, call_delta in enumerate(_shape.items(calls, "choices[0].delta.tool_calls")):
                    where = f"choices[0].delta.tool_calls[{i}]"
                    events.extend(self._tool_delta(_shape.obj(call_delta, where), where))
            finish = choice.get("finish_reason")
            if finish is not None:
                finish = _shape.text(finish, "choices[0].finish_reason")
            if finish:
                self._finish = finish
                events.extend(self._end_calls())
        usage = chunk.get("usage")
        if usage is not None:
            self._usage = _usage(usage, "usage")
            events.append(UsageUpdate(self._usage))
        return events

    def finish(self) -> list[StreamEvent]:
        """Events for ``data: [DONE]``: close any open call, make sure usage counts the request."""
        events = self._end_calls()
        if self._usage is None:  # the server ignored stream_options.include_usage
            events.append(UsageUpdate(Usage(requests=1)))
        events.append(
            StreamFinish(_finish_reason(self._finish, bool(self._calls)), self._response_id, self._model)
        )
        return events

    def _call_for(self, delta: dict[str, Any], call_id: str | None) -> _Call:
        index = delta.get("index")
        if isinstance(index, bool):
            index = None
        if isinstance(index, int):
            call = self._by_index.get(index)
            if call is not None and not (call_id and call.id and call_id != call.id):
                return call
        else:
            matches = [c for c in self._calls if c.id == call_id] if call_id else self._calls[-1:]
            if matches:
                return matches[-1]
        call = _Call(_FIRST_TOOL_BLOCK + len(self._calls))
        self._calls.append(call)
        if isinstance(index, int):
            self._by_index[index] = call
        return call

    def _tool_delta(self, delta: dict[str, Any], where: str) -> list[StreamEvent]:
        call_id = _shape.text(delta.get("id"), f"{where}.id") or None
        function = _shape.obj(delta.get("function"), f"{where}.function")
        name = _shape.text(function.get("name"), f"{where}.function.name")
        fragment = _arguments_text(function.get("arguments"), f"{where}.function.arguments")
        call = self._call_for(delta, call_id)
        if not call.id and call_id:
            call.id = call_id
        if not call.name and name:
            call.name = name
        events: list[StreamEvent] = []
        if not call.started and call.id and call.name:
            events.extend(self._start(call))
        if fragment:
            if call.started:
                events.append(ToolCallArgsDelta(call.block, fragment))
            else:
                call.pending.append(fragment)
        return events

    def _start(self, call: _Call) -> list[StreamEvent]:
        call.started = True
        events: list[StreamEvent] = [
            ToolCallStart(call.block, call.id or _fallback_call_id(call.block - _FIRST_TOOL_BLOCK), call.name)
        ]
        if call.pending:
            events.append(ToolCallArgsDelta(call.block, "".join(call.pending)))
            call.pending.clear()
        return events

    def _end_calls(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for call in self._calls:
            if call.ended:
                continue
            if not call.started:
                events.extend(self._start(call))
            call.ended = True
            events.append(ToolCallEnd(call.block))
        return events
