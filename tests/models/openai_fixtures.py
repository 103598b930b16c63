"""Chat Completions wire payloads, shaped as OpenAI's API reference documents them.

A ``chat.completion`` object for non-streaming answers; ``chat.completion.chunk`` objects for streams,
where the first chunk carries the role, tool calls arrive as ``{"index", "id", "type", "function":
{"name", "arguments"}}`` deltas (id and name once, then argument fragments), the last choice chunk has
an empty delta and the ``finish_reason``, and with ``stream_options.include_usage`` a final chunk with
``"choices": []`` carries the usage before ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CREATED = 1_741_569_952
MODEL = "gpt-4.1-mini-2025-04-14"
ID = "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(
    content: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    **message_fields: Any,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    message.update(message_fields)
    body: dict[str, Any] = {
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "service_tier": "default",
        "system_fingerprint": "fp_b376dfbbd5",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice; ``usage`` is null on every chunk but the last."""
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_b376dfbbd5",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


def usage_chunk(value: dict[str, Any]) -> dict[str, Any]:
    """The extra chunk ``stream_options: {"include_usage": true}`` adds: empty choices, the usage."""
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_b376dfbbd5",
        "choices": [],
        "usage": value,
    }


def tool_delta(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    """One tool-call delta: the first carries id, type and name with empty arguments; later ones only
    ``index`` and an arguments fragment."""
    if call_id is not None:
        return {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
    return {"index": index, "function": {"arguments": arguments}}


def stream(
    text: str | None = None,
    *,
    calls: Sequence[tuple[str, str, str]] = (),
    finish_reason: str = "stop",
    usage_value: dict[str, Any] | None = None,
    fragment: int = 3,
    reasoning: str | None = None,
    done: bool = True,
) -> list[tuple[None, Any]]:
    """SSE ``(event, data)`` pairs of one streamed answer, text and argument JSON split into
    ``fragment``-character pieces, ending with the usage chunk and ``data: [DONE]``."""
    events: list[tuple[None, Any]] = [(None, chunk({"role": "assistant", "content": "", "refusal": None}))]
    if reasoning:
        for i in range(0, len(reasoning), fragment):
            events.append((None, chunk({"reasoning_content": reasoning[i : i + fragment]})))
    if text:
        for i in range(0, len(text), fragment):
            events.append((None, chunk({"content": text[i : i + fragment]})))
    for index, (call_id, name, arguments) in enumerate(calls):
        events.append((None, chunk({"tool_calls": [tool_delta(index, call_id=call_id, name=name)]})))
        for i in range(0, len(arguments), fragment):
            events.append(
                (None, chunk({"tool_calls": [tool_delta(index, arguments=arguments[i : i + fragment])]}))
            )
    events.append((None, chunk({}, finish_reason)))
    if usage_value is not None:
        events.append((None, usage_chunk(usage_value)))
    if done:
        events.append((None, "[DONE]"))
    return events


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
