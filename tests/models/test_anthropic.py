"""The Anthropic provider against a real local HTTP server speaking the Messages API wire format."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pyflue.errors import (
    AuthenticationError,
    ConfigError,
    ContextOverflowError,
    InvalidRequestError,
    ModelTimeoutError,
    OverloadedError,
    RateLimitError,
    StreamError,
)
from pyflue.models import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OutputSchema,
    ResponseBuilder,
    StreamEvent,
    StreamFinish,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolDefinition,
    ToolResultPart,
    Usage,
    UsageUpdate,
    UserMessage,
    resolve_model,
)
from pyflue.models.anthropic import AnthropicModel
from tests.models import anthropic_fixtures as fx
from tests.wire import Reply, WireServer

EPHEMERAL = {"type": "ephemeral"}
WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
CITY = OutputSchema(
    "final_result", {"type": "object", "properties": {"city": {"type": "string"}}}, "The answer."
)


def model(wire: WireServer, name: str = "claude-haiku-4-5", **kwargs: Any) -> AnthropicModel:
    return AnthropicModel(name, api_key="test-key", base_url=wire.url, retry_base_delay=0.001, **kwargs)


def ask(text: str = "Hello", **kwargs: Any) -> ModelRequest:
    return ModelRequest([UserMessage([TextPart(text)])], **kwargs)


async def collect(m: AnthropicModel, request: ModelRequest) -> tuple[list[StreamEvent], ModelResponse]:
    builder = ResponseBuilder()
    events: list[StreamEvent] = []
    async with m.stream(request) as stream:
        async for event in stream:
            events.append(event)
            builder.add(event)
    return events, builder.build()


def count_cache_marks(value: Any) -> int:
    if isinstance(value, dict):
        return (value.get("cache_control") == EPHEMERAL) + sum(count_cache_marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_cache_marks(v) for v in value)
    return 0


# -- non-streaming ---------------------------------------------------------------------------------


async def test_text_answer(wire: WireServer) -> None:
    wire.json(fx.message([fx.text("Hi! How can I help?")]), headers={"request-id": fx.REQUEST_ID})
    response = await model(wire).request(ask("Hello", instructions="Be brief."))

    assert response.parts == [TextPart("Hi! How can I help?")]
    assert response.finish_reason == "stop"
    assert response.response_id == fx.MESSAGE_ID
    assert response.model == fx.MODEL
    assert response.usage == Usage(input_tokens=25, output_tokens=15, requests=1)

    (seen,) = wire.requests
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    assert seen.headers["x-api-key"] == "test-key"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {
        "model": "claude-haiku-4-5",
        "max_tokens": 64000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": EPHEMERAL}]}
        ],
    }


async def test_tool_call_answer(wire: WireServer) -> None:
    wire.json(
        fx.message(
            [fx.text("Let me check."), fx.tool_use("toolu_01A", "get_weather", {"location": "Paris"})],
            stop_reason="tool_use",
        )
    )
    response = await model(wire).request(ask("Weather in Paris?", tools=[WEATHER]))

    assert response.parts == [
        TextPart("Let me check."),
        ToolCallPart("toolu_01A", "get_weather", {"location": "Paris"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [ToolCallPart("toolu_01A", "get_weather", {"location": "Paris"})]
    body = wire.requests[0].json()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER.parameters,
            "cache_control": EPHEMERAL,
        }
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
    ],
)
async def test_stop_reasons(wire: WireServer, stop_reason: str, finish: str) -> None:
    wire.json(fx.message([fx.text("x")], stop_reason=stop_reason))
    assert (await model(wire).request(ask())).finish_reason == finish


async def test_conversation_maps_to_the_documented_body(wire: WireServer) -> None:
    png = b"\x89PNG\r\n\x1a\n fake image bytes"
    history: list[Message] = [
        UserMessage(
            [
                TextPart("What is in these images, and what is the weather there?"),
                ImagePart("image/png", data=png),
                ImagePart("image/jpeg", url="https://example.com/paris.jpg"),
            ]
        ),
        AssistantMessage(
            [
                ThinkingPart("The user wants the weather.", signature=fx.SIGNATURE),
                ThinkingPart(redacted=fx.REDACTED),
                TextPart("Looking it up."),
                ToolCallPart("toolu_01", "get_weather", {"location": "Paris"}),
                ToolCallPart("toolu_02", "get_weather", {"location": "Lyon"}),
            ]
        ),
        UserMessage([ToolResultPart("toolu_01", "get_weather", '{"temp": 21}')]),
        UserMessage([ToolResultPart("toolu_02", "get_weather", "city not found", is_error=True)]),
        UserMessage([TextPart("And tomorrow?")]),
    ]
    settings = ModelSettings(
        max_tokens=2048,
        temperature=1.0,
        top_p=0.99,
        stop=["END"],
        thinking_budget=1024,
        tool_choice="auto",
        parallel_tool_calls=False,
        extra_body={"metadata": {"user_id": "u-1"}},
    )
    wire.json(fx.message([fx.text("Sunny.")]))
    await model(wire).request(ModelRequest(history, "You are a weather bot.", [WEATHER], settings))

    body = wire.requests[0].json()
    assert body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 2048,
        "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": EPHEMERAL}],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "input_schema": WEATHER.parameters,
                "cache_control": EPHEMERAL,
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these images, and what is the weather there?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png).decode(),
                        },
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/paris.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "The user wants the weather.",
                        "signature": fx.SIGNATURE,
                    },
                    {"type": "redacted_thinking", "data": fx.REDACTED},
                    {"type": "text", "text": "Looking it up."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"location": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "get_weather",
                        "input": {"location": "Lyon"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": '{"temp": 21}'},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02",
                        "content": "city not found",
                        "is_error": True,
                    },
                    {"type": "text", "text": "And tomorrow?", "cache_control": EPHEMERAL},
                ],
            },
        ],
        "temperature": 1.0,
        "top_p": 0.99,
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
    }
    assert count_cache_marks(body) == 3


async def test_cache_breakpoint_skips_trailing_thinking_and_unsigned_thinking_is_dropped(
    wire: WireServer,
) -> None:
    # An assistant prefill ending in a tool call, then only thinking: the tail mark lands on the tool call.
    history: list[Message] = [
        UserMessage([TextPart("Hi")]),
        AssistantMessage(
            [
                ThinkingPart("from another provider", provider="openai"),
                TextPart(""),
                ToolCallPart("toolu_9", "get_weather", {}),
                ThinkingPart("signed", signature="sig"),
            ]
        ),
    ]
    wire.json(fx.message([fx.text("ok")]))
    await model(wire).request(ModelRequest(history))
    body = wire.requests[0].json()
    assert "system" not in body and "tools" not in body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_9",
                "name": "get_weather",
                "input": {},
                "cache_control": EPHEMERAL,
            },
            {"type": "thinking", "thinking": "signed", "signature": "sig"},
        ],
    }
    assert count_cache_marks(body) == 1


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (ModelSettings(), None),
        (ModelSettings(tool_choice="auto"), {"type": "auto"}),
        (ModelSettings(tool_choice="none"), {"type": "none"}),
        (ModelSettings(tool_choice="required"), {"type": "any"}),
        (ModelSettings(tool_choice="get_weather"), {"type": "tool", "name": "get_weather"}),
        (
            ModelSettings(tool_choice="get_weather", parallel_tool_calls=False),
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        (ModelSettings(parallel_tool_calls=False), {"type": "auto", "disable_parallel_tool_use": True}),
        (ModelSettings(tool_choice="none", parallel_tool_calls=False), {"type": "none"}),
    ],
)
async def test_tool_choice(
    wire: WireServer, settings: ModelSettings, expected: dict[str, Any] | None
) -> None:
    wire.json(fx.message([fx.text("ok")]))
    await model(wire).request(ask(tools=[WEATHER], settings=settings))
    assert wire.requests[0].json().get("tool_choice") == expected


@pytest.mark.parametrize(
    ("name", "max_tokens"),
    [
        ("claude-haiku-4-5", 64000),
        ("claude-sonnet-4-5-20250929", 64000),
        ("claude-opus-4-1", 32000),
        ("claude-3-5-haiku-latest", 8192),
        ("claude-3-haiku-20240307", 4096),  # the API refuses more than 4 096 for Claude 3
        ("claude-future-9", 8192),  # an unlisted Claude model: every one answers at least 8 192
        ("some-local-model", 4096),  # not a Claude name: the conservative default
    ],
)
async def test_default_max_tokens(wire: WireServer, name: str, max_tokens: int) -> None:
    wire.json(fx.message([fx.text("ok")]))
    await model(wire, name).request(ask())
    assert wire.requests[0].json()["max_tokens"] == max_tokens


async def test_usage_counts_cached_prompt_tokens(wire: WireServer) -> None:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 2000,
        "output_tokens": 50,
    }
    wire.json(fx.message([fx.text("ok")], usage=usage))
    response = await model(wire).request(ask())
    assert response.usage == Usage(
        input_tokens=2310, output_tokens=50, cache_read_tokens=2000, cache_write_tokens=300, requests=1
    )

    wire.sse(fx.stream_events(fx.message([fx.text("ok")], usage=usage)), split=11)
    events, streamed = await collect(model(wire), ask())
    updates = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert updates[0] == Usage(2310, 1, 2000, 300, 1)  # message_start: the prompt, one output token so far
    assert updates[-1] == streamed.usage == response.usage


async def test_per_request_timeout(wire: WireServer) -> None:
    wire.reply(Reply(200, json.dumps(fx.message([fx.text("late")])).encode(), delay=1.0))
    with pytest.raises(ModelTimeoutError):
        await model(wire, max_retries=0).request(ask(settings=ModelSettings(timeout=0.1)))


# -- streaming -------------------------------------------------------------------------------------

RICH_ANSWER = fx.message(
    [
        fx.thinking("The user asks about two cities; call the tool for each."),
        fx.text("I'll check both cities."),
        fx.tool_use("toolu_01A", "get_weather", {"location": "Paris", "unit": "celsius"}),
        fx.tool_use("toolu_01B", "get_weather", {"location": "Lyon, France"}),
    ],
    stop_reason="tool_use",
    usage={
        "input_tokens": 40,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 0,
        "output_tokens": 96,
    },
)


async def test_stream_aggregate_equals_request(wire: WireServer) -> None:
    request = ask("Weather in Paris and Lyon?", tools=[WEATHER], settings=ModelSettings(thinking_budget=2048))
    wire.json(RICH_ANSWER)
    expected = await model(wire).request(request)
    wire.sse(fx.stream_events(RICH_ANSWER, piece=3), split=7)
    events, streamed = await collect(model(wire), request)

    assert streamed == expected
    assert expected.parts == [
        ThinkingPart("The user asks about two cities; call the tool for each.", fx.SIGNATURE),
        TextPart("I'll check both cities."),
        ToolCallPart("toolu_01A", "get_weather", {"location": "Paris", "unit": "celsius"}),
        ToolCallPart("toolu_01B", "get_weather", {"location": "Lyon, France"}),
    ]
    assert expected.usage == Usage(1240, 96, 0, 1200, 1)
    assert expected.finish_reason == "tool_calls"

    assert wire.requests[1].json()["stream"] is True
    assert "stream" not in wire.requests[0].json()
    assert sum(isinstance(e, TextDelta) for e in events) > 3  # really incremental
    assert ThinkingDelta("", 0, fx.SIGNATURE) in events
    assert [e for e in events if isinstance(e, ToolCallStart | ToolCallEnd)] == [
        ToolCallStart(2, "toolu_01A", "get_weather"),
        ToolCallEnd(2),
        ToolCallStart(3, "toolu_01B", "get_weather"),
        ToolCallEnd(3),
    ]
    assert "".join(e.delta for e in events if isinstance(e, ToolCallArgsDelta) and e.index == 3) == (
        '{"location":"Lyon, France"}'
    )
    assert events[-1] == StreamFinish("tool_calls", fx.MESSAGE_ID, fx.MODEL)


async def test_stream_in_the_documented_shape(wire: WireServer) -> None:
    wire.sse(fx.WEATHER_STREAM, split=7)
    events, response = await collect(model(wire), ask(tools=[WEATHER]))
    assert response == ModelResponse(
        [
            TextPart("Checking Paris:"),
            ToolCallPart(
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"location": "Paris", "unit": "celsius"}
            ),
        ],
        Usage(input_tokens=472, output_tokens=89, requests=1),
        "tool_calls",
        "msg_014p7gG3wDgGV9EUtLvnow3U",
        fx.MODEL,
    )
    assert isinstance(events[0], UsageUpdate) and events[0].usage == Usage(472, 2, 0, 0, 1)


async def test_redacted_thinking_both_ways(wire: WireServer) -> None:
    answer = fx.message([fx.redacted(), fx.thinking("more"), fx.text("42")])
    wire.json(answer)
    expected = await model(wire).request(ask())
    wire.sse(fx.stream_events(answer), split=5)
    _, streamed = await collect(model(wire), ask())
    assert streamed == expected
    assert expected.parts == [
        ThinkingPart(redacted=fx.REDACTED),
        ThinkingPart("more", fx.SIGNATURE),
        TextPart("42"),
    ]


async def test_breaking_out_of_a_stream_early_leaves_the_model_usable(wire: WireServer) -> None:
    m = model(wire)
    wire.sse(fx.stream_events(fx.message([fx.text("a long answer " * 50)])), split=16)
    async with m.stream(ask()) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    wire.json(fx.message([fx.text("next")]))
    assert (await m.request(ask())).text == "next"


# -- typed output ----------------------------------------------------------------------------------


async def test_typed_output_forces_its_tool_and_comes_back_as_text(wire: WireServer) -> None:
    answer = fx.message([fx.tool_use("toolu_out", "final_result", {"city": "Paris"})], stop_reason="tool_use")
    wire.json(answer)
    expected = await model(wire).request(ask("Capital of France?", output=CITY))
    assert expected.parts == [TextPart(json.dumps({"city": "Paris"}))]
    assert expected.finish_reason == "stop"
    assert json.loads(expected.text) == {"city": "Paris"}

    body = wire.requests[0].json()
    assert body["tool_choice"] == {"type": "tool", "name": "final_result"}
    assert body["tools"] == [
        {
            "name": "final_result",
            "input_schema": CITY.schema,
            "description": "The answer.",
            "cache_control": EPHEMERAL,
        }
    ]

    wire.sse(fx.stream_events(answer, piece=2), split=7)
    events, streamed = await collect(model(wire), ask("Capital of France?", output=CITY))
    assert streamed == expected
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta(json.dumps({"city": "Paris"}), 0)]
    assert not any(isinstance(e, ToolCallStart | ToolCallArgsDelta | ToolCallEnd) for e in events)


async def test_typed_output_with_other_tools_lets_them_be_called(wire: WireServer) -> None:
    answer = fx.message(
        [fx.tool_use("toolu_1", "get_weather", {"location": "Paris"})],
        stop_reason="tool_use",
    )
    wire.json(answer)
    response = await model(wire).request(ask(tools=[WEATHER], output=CITY))
    body = wire.requests[0].json()
    assert body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in body["tools"]] == ["get_weather", "final_result"]
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [ToolCallPart("toolu_1", "get_weather", {"location": "Paris"})]


async def test_typed_output_with_thinking_asks_instead_of_forcing(wire: WireServer) -> None:
    answer = fx.message(
        [fx.thinking("Paris."), fx.tool_use("toolu_out", "final_result", {"city": "Paris"})],
        stop_reason="tool_use",
    )
    request = ask(
        "Capital?", instructions="Be exact.", output=CITY, settings=ModelSettings(thinking_budget=1024)
    )
    wire.json(answer)
    expected = await model(wire).request(request)
    body = wire.requests[0].json()
    assert body["tool_choice"] == {"type": "auto"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["system"][0] == {"type": "text", "text": "Be exact."}
    assert "`final_result`" in body["system"][1]["text"]
    assert body["system"][1]["cache_control"] == EPHEMERAL
    assert expected.parts == [ThinkingPart("Paris.", fx.SIGNATURE), TextPart('{"city": "Paris"}')]
    assert expected.finish_reason == "stop"

    wire.sse(fx.stream_events(answer), split=7)
    _, streamed = await collect(model(wire), request)
    assert streamed == expected


# -- HTTP errors -----------------------------------------------------------------------------------


async def test_invalid_request_carries_the_provider_error(wire: WireServer) -> None:
    wire.json(
        fx.error("invalid_request_error", "max_tokens: Field required"),
        status=400,
        headers={"request-id": "req_header_1"},
    )
    with pytest.raises(InvalidRequestError) as caught:
        await model(wire).request(ask())
    error = caught.value
    assert type(error) is InvalidRequestError
    assert (error.status_code, error.error_type, error.request_id) == (
        400,
        "invalid_request_error",
        "req_header_1",
    )
    assert error.provider == "anthropic"
    assert "max_tokens: Field required" in str(error) and "req_header_1" in str(error)
    assert len(wire.requests) == 1  # not retried


async def test_request_id_falls_back_to_the_body(wire: WireServer) -> None:
    wire.json(fx.error("not_found_error", "model: claude-nope"), status=404)
    with pytest.raises(InvalidRequestError) as caught:
        await model(wire, "claude-nope").request(ask())
    assert caught.value.request_id == fx.REQUEST_ID
    assert "check the model name" in str(caught.value)


async def test_authentication_error(wire: WireServer) -> None:
    wire.json(fx.error("authentication_error", "invalid x-api-key"), status=401)
    with pytest.raises(AuthenticationError) as caught:
        await model(wire).request(ask())
    assert caught.value.error_type == "authentication_error"
    assert "invalid x-api-key" in str(caught.value) and "ANTHROPIC_API_KEY" in str(caught.value)
    assert len(wire.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (413, fx.error("request_too_large", "Request exceeds the maximum allowed number of bytes.")),
        (400, fx.error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")),
    ],
)
async def test_context_overflow(wire: WireServer, status: int, body: dict[str, Any]) -> None:
    wire.json(body, status=status)
    with pytest.raises(ContextOverflowError) as caught:
        await model(wire).request(ask())
    assert caught.value.status_code == status
    assert caught.value.error_type == body["error"]["type"]
    assert body["error"]["message"] in str(caught.value) and "shorten" in str(caught.value)


@pytest.mark.parametrize("header", [{"retry-after": "0"}, {"retry-after-ms": "5"}])
async def test_rate_limit_retried_then_success(wire: WireServer, header: dict[str, str]) -> None:
    wire.json(
        fx.error("rate_limit_error", "Number of request tokens has exceeded your rate limit."), 429, header
    )
    wire.json(
        fx.error("rate_limit_error", "Number of request tokens has exceeded your rate limit."), 429, header
    )
    wire.json(fx.message([fx.text("finally")]))
    response = await model(wire).request(ask())
    assert response.text == "finally"
    assert len(wire.requests) == 3


async def test_rate_limit_exhausted(wire: WireServer) -> None:
    for _ in range(3):
        wire.json(fx.error("rate_limit_error", "slow down"), 429, {"retry-after-ms": "1"})
    with pytest.raises(RateLimitError) as caught:
        await model(wire).request(ask())
    assert caught.value.error_type == "rate_limit_error" and caught.value.status_code == 429
    assert len(wire.requests) == 3


async def test_server_error_retried_then_success(wire: WireServer) -> None:
    wire.json(fx.error("api_error", "Internal server error"), 500)
    wire.json(fx.message([fx.text("recovered")]))
    assert (await model(wire).request(ask())).text == "recovered"
    assert len(wire.requests) == 2


async def test_overloaded_exhausted(wire: WireServer) -> None:
    for _ in range(3):
        wire.json(fx.error("overloaded_error", "Overloaded"), 529)
    with pytest.raises(OverloadedError) as caught:
        await model(wire).request(ask())
    assert (caught.value.status_code, caught.value.error_type) == (529, "overloaded_error")
    assert len(wire.requests) == 3


async def test_stream_http_error_is_raised_on_entering(wire: WireServer) -> None:
    wire.json(fx.error("overloaded_error", "Overloaded"), 529)
    wire.sse(fx.stream_events(fx.message([fx.text("ok")])))
    _, response = await collect(model(wire), ask())
    assert response.text == "ok" and len(wire.requests) == 2
    wire.json(fx.error("authentication_error", "invalid x-api-key"), 401)
    with pytest.raises(AuthenticationError):
        await collect(model(wire), ask())


# -- stream failures -------------------------------------------------------------------------------


async def _stream_until_error(wire: WireServer) -> tuple[list[StreamEvent], StreamError]:
    events: list[StreamEvent] = []
    with pytest.raises(StreamError) as caught:
        async with model(wire).stream(ask()) as stream:
            async for event in stream:
                events.append(event)
    return events, caught.value


LONG_ANSWER = fx.stream_events(fx.message([fx.text("a fairly long answer that is streamed in pieces")]))


async def test_stream_cut_mid_body(wire: WireServer) -> None:
    wire.sse(LONG_ANSWER[:8], split=7, cut=True)
    events, error = await _stream_until_error(wire)
    assert any(isinstance(e, TextDelta) for e in events)  # what arrived was delivered first
    assert not any(isinstance(e, StreamFinish) for e in events)
    assert "cut" in str(error) and error.provider == "anthropic"


async def test_stream_clean_eof_without_message_stop(wire: WireServer) -> None:
    wire.sse(LONG_ANSWER[:-1], split=7)  # everything up to message_delta, then a clean end of body
    events, error = await _stream_until_error(wire)
    assert isinstance(events[-1], UsageUpdate)
    assert "message_stop" in str(error)


async def test_stream_cut_inside_an_event(wire: WireServer) -> None:
    wire.sse(LONG_ANSWER[:5], raw_tail=b'event: content_block_delta\ndata: {"type": "content_bl')
    _, error = await _stream_until_error(wire)
    assert "middle of an event" in str(error)


async def test_stream_error_event(wire: WireServer) -> None:
    error_event = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    wire.sse([*LONG_ANSWER[:5], error_event], split=9, headers={"request-id": "req_stream_9"})
    _, error = await _stream_until_error(wire)
    assert error.error_type == "overloaded_error"
    assert "Overloaded" in str(error) and "req_stream_9" in str(error)


async def test_stream_malformed_json(wire: WireServer) -> None:
    wire.sse(
        [*LONG_ANSWER[:3], ("content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {')]
    )
    _, error = await _stream_until_error(wire)
    assert "malformed JSON" in str(error)


async def test_stream_event_of_unexpected_shape(wire: WireServer) -> None:
    wire.sse([*LONG_ANSWER[:3], ("content_block_delta", {"type": "content_block_delta", "delta": {}})])
    _, error = await _stream_until_error(wire)
    assert "unexpected" in str(error)


async def test_unknown_events_and_deltas_are_ignored(wire: WireServer) -> None:
    answer = fx.message([fx.text("ok")])
    events = fx.stream_events(answer)
    extra = [
        ("future_event", {"type": "future_event", "x": 1}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta"}},
        ),
    ]
    wire.sse([*events[:3], *extra, *events[3:]])
    _, response = await collect(model(wire), ask())
    assert response.parts == [TextPart("ok")]


# -- registry --------------------------------------------------------------------------------------


async def test_resolve_model_posts_to_the_configured_base_url(wire: WireServer) -> None:
    m = resolve_model(
        "anthropic/claude-haiku-4-5", env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": wire.url}
    )
    assert isinstance(m, AnthropicModel) and m.model_name == "claude-haiku-4-5" and m.provider == "anthropic"
    wire.json(fx.message([fx.text("ok")]))
    assert (await m.request(ask())).text == "ok"
    assert wire.requests[0].path == "/v1/messages"
    assert wire.requests[0].headers["x-api-key"] == "k"


def test_resolve_model_without_a_key() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        resolve_model("anthropic/claude-haiku-4-5", env={})
