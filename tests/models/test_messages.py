"""Messages are persisted and sent over the wire: any history round-trips through JSON unchanged,
usage adds up, and folding a response's stream events gives the response back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.models.base import ModelResponse, ResponseBuilder, Usage
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    messages_from_json,
    messages_to_json,
    user_parts,
)
from pyflue.models.testing import events_for_response

_text = st.text(max_size=40)
_json_value: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)
_args = st.dictionaries(_text, _json_value, max_size=4)
_image = st.builds(
    ImagePart,
    mime_type=st.sampled_from(["image/png", "image/jpeg"]),
    data=st.none() | st.binary(max_size=64),
    url=st.none() | st.just("https://example.invalid/cat.png"),
)
_user_part = st.one_of(
    st.builds(TextPart, _text),
    _image,
    st.builds(ToolResultPart, call_id=_text, name=_text, content=_text, is_error=st.booleans()),
)
_assistant_part = st.one_of(
    st.builds(TextPart, _text),
    st.builds(
        ThinkingPart,
        text=_text,
        signature=st.none() | _text,
        redacted=st.none() | _text,
        provider=st.none() | _text,
    ),
    st.builds(ToolCallPart, id=_text, name=_text, args=_args),
)
_message = st.one_of(
    st.builds(UserMessage, st.lists(_user_part, max_size=4)),
    st.builds(AssistantMessage, st.lists(_assistant_part, max_size=4)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, max_size=6))
def test_any_history_round_trips_through_json(history: list[UserMessage | AssistantMessage]) -> None:
    data = messages_to_json(history)
    json.loads(data)  # valid JSON text, image bytes included (base64)
    assert messages_from_json(data) == history
    assert messages_to_json(messages_from_json(data)) == data


_usage = st.builds(Usage, *(st.integers(min_value=0, max_value=10**9) for _ in range(5)))


@given(_usage, _usage, _usage)
def test_usage_adds_up(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + Usage() == a
    total = a + b
    assert total.input_tokens == a.input_tokens + b.input_tokens
    assert total.requests == a.requests + b.requests
    assert total.to_dict()["cache_write_tokens"] == a.cache_write_tokens + b.cache_write_tokens


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_assistant_part, max_size=5),
    _usage,
    st.sampled_from(["stop", "length", "tool_calls", "content_filter", "other"]),
    st.none() | _text,
)
def test_stream_events_fold_back_into_the_response(
    parts: list[Any], usage: Usage, finish: Any, response_id: str | None
) -> None:
    # Text parts merge when adjacent in a stream, as providers' content blocks do not: keep one per index.
    response = ModelResponse(parts, usage, finish, response_id, "m")
    builder = ResponseBuilder()
    for event in events_for_response(response):
        builder.add(event)
    rebuilt = builder.build()
    assert rebuilt == ModelResponse(
        [
            p if not isinstance(p, ThinkingPart) else ThinkingPart(p.text, p.signature, p.redacted)
            for p in parts
        ],
        usage,
        finish,
        response_id,
        "m",
    )


def test_prompt_input_parts_are_validated() -> None:
    parts = user_parts(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "data": b"\x89PNG", "mime_type": "image/png"},
        ]
    )
    assert parts == [TextPart("What is this?"), ImagePart("image/png", b"\x89PNG")]
    with pytest.raises(ConfigError, match="invalid prompt part"):
        user_parts([{"type": "video", "data": b""}])
    with pytest.raises(ConfigError):
        user_parts([])
