"""Provider answers that are valid JSON of the wrong shape: a typed error naming the field, never a bare
AttributeError/TypeError/KeyError, and never a response whose parts have the wrong types."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue.errors import ModelAPIError, PyFlueError, StreamError
from pyflue.models import (
    ModelRequest,
    ModelResponse,
    ResponseBuilder,
    StreamEvent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UserMessage,
)
from pyflue.models.anthropic import AnthropicModel, StreamDecoder
from pyflue.models.openai import ChunkDecoder, OpenAIChatModel
from pyflue.models.sse import SSEEvent
from tests.models import anthropic_fixtures as afx
from tests.models import openai_fixtures as ofx
from tests.wire import WireServer

OPENAI = OpenAIChatModel("gpt-4.1-mini", base_url="http://127.0.0.1:1/v1")
ANTHROPIC = AnthropicModel("claude-haiku-4-5", api_key="k", base_url="http://127.0.0.1:1")

# Keys the parsers look for, so arbitrary objects reach past the first lookup.
KEYS = st.sampled_from(
    [
        "choices",
        "message",
        "delta",
        "content",
        "refusal",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "id",
        "index",
        "finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "cached_tokens",
        "model",
        "type",
        "text",
        "thinking",
        "signature",
        "data",
        "input",
        "partial_json",
        "content_block",
        "stop_reason",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "error",
        "reasoning_content",
    ]
) | st.text(max_size=4)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(
        ["text", "tool_use", "text_delta", "input_json_delta", "thinking", "stop", "tool_calls"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*at, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` (a real answer) with one value somewhere inside replaced by arbitrary JSON."""
    value = copy.deepcopy(template)
    path = draw(st.sampled_from(_paths(value)))
    replacement = draw(JSON)
    if not path:
        return replacement
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = replacement
    return value


def assert_well_typed(response: ModelResponse) -> None:
    for part in response.parts:
        if isinstance(part, TextPart):
            assert isinstance(part.text, str)
        elif isinstance(part, ThinkingPart):
            assert isinstance(part.text, str)
            assert part.signature is None or isinstance(part.signature, str)
        else:
            assert isinstance(part, ToolCallPart)
            assert isinstance(part.id, str) and isinstance(part.name, str) and isinstance(part.args, dict)
    usage = response.usage
    assert all(type(n) is int for n in usage.to_dict().values())
    assert response.response_id is None or isinstance(response.response_id, str)
    assert response.model is None or isinstance(response.model, str)


OPENAI_BODY = ofx.completion(
    "Checking.",
    tool_calls=[ofx.tool_call("call_1", "get_weather", '{"city": "Paris"}')],
    usage=ofx.usage(9, 4, 2),
)
OPENAI_CHUNKS = [
    data for _, data in ofx.stream("Hi!", calls=[("call_1", "f", '{"a": 1}')], usage_value=ofx.usage(3, 2))
]
ANTHROPIC_BODY = afx.message(
    [afx.thinking("hmm"), afx.text("Checking."), afx.tool_use("toolu_1", "get_weather", {"city": "Paris"})],
    stop_reason="tool_use",
)
ANTHROPIC_EVENTS = afx.stream_events(ANTHROPIC_BODY)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(JSON, mutated(OPENAI_BODY)))
def test_openai_response_parser_raises_only_typed_errors(body: Any) -> None:
    try:
        response = OPENAI.parse_response(body)
    except PyFlueError:
        return
    assert_well_typed(response)


@SETTINGS
@given(
    st.lists(st.one_of(mutated(OPENAI_CHUNKS[0]), mutated(OPENAI_CHUNKS[-2]), JSON), max_size=4), st.data()
)
def test_openai_chunk_decoder_raises_only_typed_errors(noise: list[Any], data: st.DataObject) -> None:
    chunks = [c for c in OPENAI_CHUNKS if isinstance(c, dict)]
    at = data.draw(st.integers(0, len(chunks)))
    chunks[at:at] = [c for c in noise if isinstance(c, dict)]
    decoder, builder = ChunkDecoder(), ResponseBuilder()
    try:
        for chunk in chunks:
            for event in decoder.feed(chunk):
                builder.add(event)
        for event in decoder.finish():
            builder.add(event)
    except PyFlueError:
        return
    assert_well_typed(builder.build())


@SETTINGS
@given(st.one_of(JSON, mutated(ANTHROPIC_BODY)))
def test_anthropic_response_parser_raises_only_typed_errors(body: Any) -> None:
    try:
        response = ANTHROPIC.parse_response(body, "final_result")
    except PyFlueError:
        return
    assert_well_typed(response)


@SETTINGS
@given(st.data())
def test_anthropic_stream_decoder_raises_only_typed_errors(data: st.DataObject) -> None:
    events = list(ANTHROPIC_EVENTS)
    at = data.draw(st.integers(0, len(events) - 1))
    name, payload = events[at]
    events[at] = (name, data.draw(st.one_of(mutated(payload), JSON)))
    decoder, builder = StreamDecoder(None, None), ResponseBuilder()
    try:
        for name, payload in events:
            for event in decoder.handle(SSEEvent(name or "message", json.dumps(payload))):
                builder.add(event)
    except PyFlueError:
        return
    assert_well_typed(builder.build())


# -- the reported cases, end to end -------------------------------------------------------------------


def ask() -> ModelRequest:
    return ModelRequest([UserMessage([TextPart("Hello")])])


async def collect(model: OpenAIChatModel | AnthropicModel) -> list[StreamEvent]:
    async with model.stream(ask()) as stream:
        return [event async for event in stream]


async def test_openai_chunk_with_tool_calls_5(wire: WireServer) -> None:
    events = ofx.stream("Hi", done=True)
    events.insert(2, (None, ofx.chunk({"tool_calls": 5})))
    wire.sse(events)
    model = OpenAIChatModel("gpt-4.1-mini", base_url=wire.url)
    with pytest.raises(StreamError, match=r"choices\[0\]\.delta\.tool_calls should be an array, got 5"):
        await collect(model)


async def test_openai_body_with_tool_calls_5(wire: WireServer) -> None:
    body = ofx.completion("Hi")
    body["choices"][0]["message"]["tool_calls"] = 5
    wire.json(body)
    model = OpenAIChatModel("gpt-4.1-mini", base_url=wire.url)
    with pytest.raises(ModelAPIError, match=r"choices\[0\]\.message\.tool_calls should be an array, got 5"):
        await model.request(ask())


@pytest.mark.parametrize(
    ("content", "where"),
    [([5], r"content\[0\] should be an object, got 5"), (5, "content should be an array, got 5")],
)
async def test_anthropic_body_with_content_5(wire: WireServer, content: Any, where: str) -> None:
    wire.json({**afx.message([]), "content": content})
    model = AnthropicModel("claude-haiku-4-5", api_key="k", base_url=wire.url)
    with pytest.raises(ModelAPIError, match=where) as info:
        await model.request(ask())
    assert info.value.status_code == 200 and info.value.provider == "anthropic"


async def test_anthropic_stream_text_delta_of_the_wrong_type(wire: WireServer) -> None:
    events = afx.stream_events(afx.message([afx.text("Hello")]))
    events.insert(
        3,
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        ),
    )
    wire.sse(events)
    model = AnthropicModel("claude-haiku-4-5", api_key="k", base_url=wire.url)
    with pytest.raises(StreamError, match=r"delta\.text should be a string, got 5"):
        await collect(model)
