"""The OpenAI Chat Completions provider against a real local HTTP server speaking the documented wire
format (no test touches the internet)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pyflue.errors import (
    AuthenticationError,
    ConfigError,
    ContextOverflowError,
    InvalidRequestError,
    ModelAPIError,
    ModelTimeoutError,
    OverloadedError,
    RateLimitError,
    StreamError,
)
from pyflue.models import resolve_model
from pyflue.models.base import (
    ModelRequest,
    ModelResponse,
    OutputSchema,
    ResponseBuilder,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolDefinition,
    Usage,
    UsageUpdate,
)
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
)
from pyflue.models.openai import OpenAIChatModel
from tests.models import openai_fixtures as fx
from tests.wire import Reply, WireServer

WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolDefinition(
    "get_time", "Local time in a timezone.", {"type": "object", "properties": {"tz": {"type": "string"}}}
)


def _model(wire: WireServer, **kwargs: Any) -> OpenAIChatModel:
    options: dict[str, Any] = {"base_url": wire.url, "api_key": "test-key", "retry_base_delay": 0.001}
    options.update(kwargs)
    return OpenAIChatModel("gpt-4.1-mini", **options)


def _ask(text: str = "Hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest([UserMessage([TextPart(text)])], **kwargs)


async def _collect(model: OpenAIChatModel, request: ModelRequest) -> tuple[list[StreamEvent], ModelResponse]:
    builder = ResponseBuilder()
    events: list[StreamEvent] = []
    async with model.stream(request) as stream:
        async for event in stream:
            events.append(event)
            builder.add(event)
    assert builder.finished
    return events, builder.build()


# -- non-streaming ---------------------------------------------------------------------------------


async def test_text_answer(wire: WireServer) -> None:
    wire.json(fx.completion("Hello there!", usage=fx.usage(19, 10)), headers={"x-request-id": "req_1"})
    response = await _model(wire).request(_ask("Hello"))
    assert response.parts == [TextPart("Hello there!")]
    assert response.text == "Hello there!"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=19, output_tokens=10, requests=1)
    assert response.response_id == fx.ID
    assert response.model == fx.MODEL
    seen = wire.requests[0]
    assert (seen.method, seen.path) == ("POST", "/chat/completions")
    assert seen.headers["authorization"] == "Bearer test-key"
    body = seen.json()
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert "stream" not in body


async def test_two_parallel_tool_calls(wire: WireServer) -> None:
    calls = [
        fx.tool_call("call_a", "get_weather", '{"city": "Paris"}'),
        fx.tool_call("call_b", "get_time", '{"tz": "Europe/Paris"}'),
    ]
    wire.json(fx.completion(None, tool_calls=calls, finish_reason="tool_calls", usage=fx.usage(80, 40)))
    response = await _model(wire).request(_ask("Weather and time in Paris?", tools=[WEATHER, TIME]))
    assert response.parts == [
        ToolCallPart("call_a", "get_weather", {"city": "Paris"}),
        ToolCallPart("call_b", "get_time", {"tz": "Europe/Paris"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.text == ""


async def test_malformed_tool_arguments_are_kept_and_sent_back_verbatim(wire: WireServer) -> None:
    wire.json(
        fx.completion(
            None, tool_calls=[fx.tool_call("c1", "get_weather", '{"city": "Par')], finish_reason="tool_calls"
        )
    )
    wire.json(fx.completion("ok"))
    model = _model(wire)
    response = await model.request(_ask(tools=[WEATHER]))
    assert response.tool_calls[0].args == {"__raw__": '{"city": "Par'}
    history = [
        UserMessage([TextPart("Hi")]),
        response.message(),
        UserMessage([ToolResultPart("c1", "get_weather", "bad json")]),
    ]
    await model.request(ModelRequest(history, tools=[WEATHER]))
    sent = wire.requests[1].json()["messages"][1]
    assert sent["tool_calls"][0]["function"]["arguments"] == '{"city": "Par'


async def test_reasoning_content_comes_first_as_thinking(wire: WireServer) -> None:
    wire.json(fx.completion("42", reasoning_content="Six times seven.", usage=fx.usage(12, 30, reasoning=20)))
    response = await _model(wire, provider_name="vllm").request(_ask("6*7?"))
    assert response.parts == [ThinkingPart("Six times seven."), TextPart("42")]
    assert response.usage.output_tokens == 30


async def test_usage_with_cached_tokens(wire: WireServer) -> None:
    wire.json(fx.completion("cached", usage=fx.usage(2006, 300, cached=1920)))
    response = await _model(wire).request(_ask())
    # prompt_tokens already counts the cached part: input_tokens is the whole prompt.
    assert response.usage == Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, requests=1)


async def test_finish_reasons(wire: WireServer) -> None:
    model = _model(wire)
    for wire_reason, expected in [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("weird", "other"),
    ]:
        wire.json(fx.completion("x", finish_reason=wire_reason))
        assert (await model.request(_ask())).finish_reason == expected
    wire.json(
        fx.completion(
            None, tool_calls=[fx.tool_call("c", "get_weather", "{}")], finish_reason="function_call"
        )
    )
    assert (await model.request(_ask(tools=[WEATHER]))).finish_reason == "tool_calls"


async def test_refusal_is_returned_as_text(wire: WireServer) -> None:
    wire.json(fx.completion(None, refusal="I'm sorry, I can't help with that."))
    response = await _model(wire).request(_ask(output=OutputSchema("answer", {"type": "object"})))
    assert response.parts == [TextPart("I'm sorry, I can't help with that.")]


async def test_timeout_setting_applies_per_request(wire: WireServer) -> None:
    wire.reply(Reply(200, b"{}", delay=1.0))
    with pytest.raises(ModelTimeoutError, match=r"within 0.05s"):
        await _model(wire, max_retries=0).request(_ask(settings={"timeout": 0.05}))


# -- request mapping -------------------------------------------------------------------------------


async def test_request_body_mapping(wire: WireServer) -> None:
    wire.json(fx.completion("done"))
    history = [
        UserMessage(
            [
                TextPart("What is in these images?"),
                ImagePart("image/png", data=b"\x89PNG\r\n"),
                ImagePart("image/jpeg", url="https://example.com/cat.jpg"),
            ]
        ),
        AssistantMessage(
            [
                ThinkingPart("I should look it up.", signature="sig"),
                TextPart("Let me check."),
                ToolCallPart("call_1", "get_weather", {"city": "Paris"}),
                ToolCallPart("call_2", "get_time", {"tz": "CET"}),
            ]
        ),
        UserMessage(
            [
                ToolResultPart("call_1", "get_weather", '{"temp": 21}'),
                ToolResultPart("call_2", "get_time", "12:00", is_error=False),
                TextPart("Thanks."),
            ]
        ),
    ]
    request = ModelRequest(
        history,
        instructions="You are terse.",
        tools=[WEATHER, TIME],
        settings={
            "max_tokens": 256,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["END"],
            "reasoning_effort": "low",
            "tool_choice": "get_weather",
            "parallel_tool_calls": False,
            "thinking_budget": 999,  # Anthropic-only: ignored
            "extra_body": {"seed": 7, "temperature": 0.0},
        },
        output=OutputSchema(
            "Final Answer!", {"type": "object", "properties": {"x": {"type": "integer"}}}, "The result."
        ),
    )
    await _model(wire).request(request)
    body = wire.requests[0].json()
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these images?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz":"CET"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
        {"role": "user", "content": "Thanks."},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in (WEATHER, TIME)
    ]
    assert body["max_completion_tokens"] == 256
    assert "max_tokens" not in body
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    assert body["reasoning_effort"] == "low"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["seed"] == 7
    assert body["temperature"] == 0.0  # extra_body is merged last
    assert "thinking_budget" not in body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "Final_Answer_",
            "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "strict": False,
            "description": "The result.",
        },
    }


async def test_compatible_provider_uses_max_tokens_and_no_auth_without_key(wire: WireServer) -> None:
    wire.json(fx.completion("hi"))
    model = _model(wire, api_key=None, provider_name="ollama")
    assert model.provider == "ollama"
    await model.request(_ask(settings={"max_tokens": 64}))
    seen = wire.requests[0]
    assert "authorization" not in seen.headers
    assert seen.json()["max_tokens"] == 64
    assert "max_completion_tokens" not in seen.json()


async def test_tool_choice_keywords(wire: WireServer) -> None:
    model = _model(wire)
    for i, choice in enumerate(["auto", "none", "required"]):
        wire.json(fx.completion("hi"))
        await model.request(
            _ask(tools=[WEATHER], settings={"tool_choice": choice, "parallel_tool_calls": True})
        )
        body = wire.requests[i].json()
        assert body["tool_choice"] == choice
        assert body["parallel_tool_calls"] is True


async def test_tool_settings_are_not_sent_without_tools(wire: WireServer) -> None:
    wire.json(fx.completion("hi"))
    await _model(wire).request(_ask(settings={"tool_choice": "auto", "parallel_tool_calls": True}))
    body = wire.requests[0].json()
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body


async def test_assistant_message_with_only_thinking_sends_empty_content(wire: WireServer) -> None:
    wire.json(fx.completion("hi"))
    history = [
        UserMessage([TextPart("a")]),
        AssistantMessage([ThinkingPart("hmm")]),
        UserMessage([TextPart("b")]),
    ]
    await _model(wire).request(ModelRequest(history))
    assert wire.requests[0].json()["messages"][1] == {"role": "assistant", "content": ""}


async def test_image_without_data_or_url_is_a_config_error(wire: WireServer) -> None:
    with pytest.raises(ConfigError, match="image"):
        await _model(wire).request(ModelRequest([UserMessage([ImagePart()])]))
    assert wire.requests == []


# -- streaming -------------------------------------------------------------------------------------

ARGS_A = '{"city": "Paris", "units": "celsius", "detail": "a rather long argument value"}'
ARGS_B = '{"tz": "Europe/Paris"}'


async def test_stream_tool_calls_split_everywhere_equal_the_non_streaming_answer(wire: WireServer) -> None:
    use = fx.usage(120, 64, cached=64)
    events = fx.stream(
        "Checking both.",
        calls=[("call_a", "get_weather", ARGS_A), ("call_b", "get_time", ARGS_B)],
        finish_reason="tool_calls",
        usage_value=use,
        fragment=4,
    )
    assert len(events) > 30  # the arguments really arrive in many chunks
    wire.sse(events, split=5)
    calls = [fx.tool_call("call_a", "get_weather", ARGS_A), fx.tool_call("call_b", "get_time", ARGS_B)]
    wire.json(fx.completion("Checking both.", tool_calls=calls, finish_reason="tool_calls", usage=use))
    model = _model(wire)
    request = _ask("Weather and time?", tools=[WEATHER, TIME])
    streamed, aggregate = await _collect(model, request)
    direct = await model.request(request)
    assert aggregate == direct
    assert direct.parts == [
        TextPart("Checking both."),
        ToolCallPart("call_a", "get_weather", json.loads(ARGS_A)),
        ToolCallPart("call_b", "get_time", json.loads(ARGS_B)),
    ]
    assert direct.usage == Usage(120, 64, cache_read_tokens=64, requests=1)
    # The events themselves: deltas per block, starts before fragments, ends after the finish chunk.
    assert [e for e in streamed if isinstance(e, ToolCallStart)] == [
        ToolCallStart(2, "call_a", "get_weather"),
        ToolCallStart(3, "call_b", "get_time"),
    ]
    assert "".join(e.delta for e in streamed if isinstance(e, ToolCallArgsDelta) and e.index == 2) == ARGS_A
    assert len([e for e in streamed if isinstance(e, ToolCallArgsDelta)]) > 10
    assert all(e.index == 1 for e in streamed if isinstance(e, TextDelta))
    assert [type(e) for e in streamed[-4:]] == [ToolCallEnd, ToolCallEnd, UsageUpdate, StreamFinish]
    assert streamed[-1] == StreamFinish("tool_calls", fx.ID, fx.MODEL)
    body = wire.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_reasoning_then_text_equals_non_streaming(wire: WireServer) -> None:
    use = fx.usage(30, 50, reasoning=20)
    wire.sse(fx.stream("The answer is 42.", reasoning="Think: six times seven.", usage_value=use), split=7)
    wire.json(fx.completion("The answer is 42.", reasoning_content="Think: six times seven.", usage=use))
    model = _model(wire, provider_name="vllm")
    streamed, aggregate = await _collect(model, _ask())
    assert aggregate == await model.request(_ask())
    assert aggregate.parts == [ThinkingPart("Think: six times seven."), TextPart("The answer is 42.")]
    assert {e.index for e in streamed if isinstance(e, ThinkingDelta)} == {0}


async def test_stream_usage_update_carries_cached_tokens(wire: WireServer) -> None:
    wire.sse(fx.stream("hi", usage_value=fx.usage(2006, 3, cached=1920)))
    streamed, aggregate = await _collect(_model(wire), _ask())
    assert [e for e in streamed if isinstance(e, UsageUpdate)] == [UsageUpdate(Usage(2006, 3, 1920, 0, 1))]
    assert aggregate.usage.cache_read_tokens == 1920


async def test_stream_without_usage_chunk_still_counts_the_request(wire: WireServer) -> None:
    wire.sse(fx.stream("hi", usage_value=None))
    _, aggregate = await _collect(_model(wire), _ask())
    assert aggregate.usage == Usage(requests=1)
    assert aggregate.text == "hi"


async def test_stream_tool_call_reusing_index_zero_gets_its_own_block(wire: WireServer) -> None:
    # Some compatible servers send each parallel call whole, all at index 0.
    events = [
        (
            None,
            fx.chunk(
                {
                    "role": "assistant",
                    "tool_calls": [fx.tool_delta(0, call_id="c1", name="get_weather", arguments="{}")],
                }
            ),
        ),
        (
            None,
            fx.chunk(
                {"tool_calls": [fx.tool_delta(0, call_id="c2", name="get_time", arguments='{"tz": "UTC"}')]}
            ),
        ),
        (None, fx.chunk({}, "tool_calls")),
        (None, "[DONE]"),
    ]
    wire.sse(events)
    _, aggregate = await _collect(_model(wire, provider_name="gemini"), _ask(tools=[WEATHER, TIME]))
    assert aggregate.parts == [
        ToolCallPart("c1", "get_weather", {}),
        ToolCallPart("c2", "get_time", {"tz": "UTC"}),
    ]


async def test_breaking_out_of_a_stream_early_closes_it(wire: WireServer) -> None:
    wire.sse(fx.stream("a long answer " * 20, usage_value=fx.usage(1, 1)), split=16)
    wire.json(fx.completion("next"))
    model = _model(wire)
    async with model.stream(_ask()) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    assert (await model.request(_ask())).text == "next"


# -- stream failures -------------------------------------------------------------------------------


async def test_stream_cut_mid_way_is_a_stream_error(wire: WireServer) -> None:
    events = fx.stream(calls=[("call_a", "get_weather", ARGS_A)], finish_reason="tool_calls", done=False)
    wire.sse(events[:6], split=9, cut=True)
    seen: list[StreamEvent] = []
    with pytest.raises(StreamError, match="cut") as info:
        async with _model(wire).stream(_ask(tools=[WEATHER])) as stream:
            async for event in stream:
                seen.append(event)
    assert info.value.provider == "openai"
    assert isinstance(info.value.__cause__, httpx.TransportError)  # the connection really dropped
    assert any(isinstance(e, ToolCallArgsDelta) for e in seen)  # it failed mid-way, after real events
    assert not any(isinstance(e, StreamFinish) for e in seen)


async def test_stream_clean_eof_without_done_is_a_stream_error(wire: WireServer) -> None:
    wire.sse(fx.stream("complete looking text", usage_value=fx.usage(3, 4), done=False))
    with pytest.raises(StreamError, match=r"without 'data: \[DONE\]'"):
        await _collect(_model(wire), _ask())


async def test_stream_eof_inside_an_event_is_a_stream_error(wire: WireServer) -> None:
    wire.sse(fx.stream("text", done=False), raw_tail=b'data: {"id": "chatcmpl-x", "choi')
    with pytest.raises(StreamError, match="middle of an event"):
        await _collect(_model(wire), _ask())


async def test_stream_error_chunk_is_a_stream_error(wire: WireServer) -> None:
    events = fx.stream("partial", done=False)[:3]
    events.append(
        (
            None,
            fx.error_body(
                "The server had an error while processing your request.", "server_error", "server_error"
            ),
        )
    )
    wire.sse(events)
    with pytest.raises(StreamError, match="server had an error") as info:
        await _collect(_model(wire), _ask())
    assert info.value.error_type == "server_error"


async def test_stream_malformed_data_is_a_stream_error(wire: WireServer) -> None:
    wire.sse(
        [
            *fx.stream("partial", done=False)[:2],
            (None, '{"id": "chatcmpl-1", "choices": [{"delta": '),
            (None, "[DONE]"),
        ]
    )
    with pytest.raises(StreamError, match="malformed"):
        await _collect(_model(wire), _ask())


async def test_stream_http_error_before_events_is_typed(wire: WireServer) -> None:
    wire.json(
        fx.error_body("Invalid value for 'model'.", "invalid_request_error", "model_not_found", "model"),
        status=404,
    )
    with pytest.raises(InvalidRequestError, match="Invalid value") as info:
        await _collect(_model(wire), _ask())
    assert info.value.error_type == "model_not_found"


async def test_stream_answered_with_json_is_a_stream_error(wire: WireServer) -> None:
    wire.json(fx.error_body("upstream failed", "server_error"))
    with pytest.raises(StreamError, match="upstream failed"):
        await _collect(_model(wire), _ask())


# -- HTTP errors -----------------------------------------------------------------------------------


async def test_400_is_invalid_request_with_type_and_request_id(wire: WireServer) -> None:
    body = fx.error_body(
        "Invalid type for 'temperature': expected a decimal.",
        "invalid_request_error",
        "invalid_type",
        "temperature",
    )
    wire.json(body, status=400, headers={"x-request-id": "req_abc123"})
    with pytest.raises(InvalidRequestError) as info:
        await _model(wire).request(_ask())
    error = info.value
    assert type(error) is InvalidRequestError
    assert error.status_code == 400
    assert error.error_type == "invalid_type"
    assert error.request_id == "req_abc123"
    assert error.body == body
    assert "expected a decimal" in str(error) and "req_abc123" in str(error)
    assert len(wire.requests) == 1  # a 400 is not retried


async def test_400_without_code_uses_the_error_type(wire: WireServer) -> None:
    wire.json(
        fx.error_body("Unrecognized request argument supplied: foo", "invalid_request_error"), status=400
    )
    with pytest.raises(InvalidRequestError) as info:
        await _model(wire).request(_ask())
    assert info.value.error_type == "invalid_request_error"


async def test_401_is_an_authentication_error(wire: WireServer) -> None:
    wire.json(
        fx.error_body("Incorrect API key provided: sk-abc.", "invalid_request_error", "invalid_api_key"),
        status=401,
    )
    with pytest.raises(AuthenticationError, match="Incorrect API key") as info:
        await _model(wire).request(_ask())
    assert info.value.error_type == "invalid_api_key"
    assert len(wire.requests) == 1


async def test_context_length_exceeded_is_context_overflow(wire: WireServer) -> None:
    message = (
        "This model's maximum context length is 128000 tokens. "
        "However, your messages resulted in 130415 tokens. Please reduce the length of the messages."
    )
    wire.json(
        fx.error_body(message, "invalid_request_error", "context_length_exceeded", "messages"), status=400
    )
    with pytest.raises(ContextOverflowError) as info:
        await _model(wire).request(_ask())
    assert info.value.error_type == "context_length_exceeded"
    assert info.value.status_code == 400


async def test_vllm_context_overflow_message_is_context_overflow(wire: WireServer) -> None:
    body = {
        "object": "error",
        "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
        "(8000 in the messages, 1000 in the completion). "
        "Please reduce the length of the messages or completion.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    wire.json(body, status=400)
    with pytest.raises(ContextOverflowError, match="maximum context length") as info:
        await _model(wire, provider_name="vllm", api_key=None).request(_ask())
    assert info.value.error_type == "BadRequestError"
    assert info.value.provider == "vllm"


async def test_list_and_plain_text_error_bodies(wire: WireServer) -> None:
    wire.json(
        [{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}], status=400
    )
    with pytest.raises(InvalidRequestError, match="API key not valid"):
        await _model(wire, provider_name="gemini").request(_ask())
    wire.reply(Reply(400, b"model 'nope' not found", headers={"content-type": "text/plain"}))
    with pytest.raises(InvalidRequestError, match="model 'nope' not found"):
        await _model(wire).request(_ask())


async def test_429_with_retry_after_is_retried_then_succeeds(wire: WireServer) -> None:
    wire.json(
        fx.error_body("Rate limit reached.", "requests", "rate_limit_exceeded"),
        status=429,
        headers={"retry-after": "0"},
    )
    wire.json(fx.completion("after the wait"))
    response = await _model(wire).request(_ask())
    assert response.text == "after the wait"
    assert len(wire.requests) == 2


async def test_429_exhausted_is_a_rate_limit_error(wire: WireServer) -> None:
    for _ in range(3):
        wire.json(
            fx.error_body("Rate limit reached.", "requests", "rate_limit_exceeded"),
            status=429,
            headers={"retry-after": "0"},
        )
    with pytest.raises(RateLimitError) as info:
        await _model(wire, max_retries=2).request(_ask())
    assert info.value.error_type == "rate_limit_exceeded"
    assert len(wire.requests) == 3


async def test_500_then_success(wire: WireServer) -> None:
    wire.json(
        fx.error_body("The server had an error while processing your request.", "server_error"), status=500
    )
    wire.json(fx.completion("recovered"))
    assert (await _model(wire).request(_ask())).text == "recovered"
    assert len(wire.requests) == 2


async def test_503_exhausted_is_overloaded(wire: WireServer) -> None:
    for _ in range(2):
        wire.json(
            fx.error_body("The engine is currently overloaded, please try again later.", "server_error"),
            status=503,
        )
    with pytest.raises(OverloadedError, match="overloaded") as info:
        await _model(wire, max_retries=1).request(_ask())
    assert info.value.status_code == 503
    assert len(wire.requests) == 2


async def test_200_with_an_error_body_is_an_error(wire: WireServer) -> None:
    wire.json(fx.error_body("Provider returned error", "upstream_error"))
    with pytest.raises(ModelAPIError, match="Provider returned error"):
        await _model(wire, provider_name="openrouter").request(_ask())


# -- registry --------------------------------------------------------------------------------------


async def test_registry_openai_posts_to_the_base_url(wire: WireServer) -> None:
    for i, name in enumerate(["openai/gpt-4.1-mini", "openai:gpt-4.1-mini"]):
        wire.json(fx.completion("from the registry"))
        model = resolve_model(name, env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": wire.url})
        assert isinstance(model, OpenAIChatModel)
        assert (model.provider, model.model_name) == ("openai", "gpt-4.1-mini")
        assert (await model.request(_ask())).text == "from the registry"
        seen = wire.requests[i]
        assert seen.path == "/chat/completions"
        assert seen.headers["authorization"] == "Bearer k"
        assert seen.json()["model"] == "gpt-4.1-mini"


async def test_registry_ollama_needs_no_key(wire: WireServer) -> None:
    wire.json(fx.completion("local"))
    model = resolve_model("ollama/llama3.1", env={"OLLAMA_BASE_URL": wire.url + "/v1"})
    assert model.provider == "ollama"
    assert (await model.request(_ask(settings={"max_tokens": 10}))).text == "local"
    seen = wire.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert "authorization" not in seen.headers
    assert seen.json()["model"] == "llama3.1"
    assert seen.json()["max_tokens"] == 10


def test_registry_missing_openai_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_model("openai/gpt-4.1-mini", env={})


def test_default_base_url_is_openai() -> None:
    model = resolve_model("openai/gpt-4.1-mini", env={"OPENAI_API_KEY": "k"})
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "https://api.openai.com/v1"
    assert model.output_mode == "native"
