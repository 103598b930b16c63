"""The turn loop on TestModel and FunctionModel (tool round trips, concurrent tools, error recovery,
typed output on the native and the prompted path, max turns), then on real HTTP against the local
Anthropic and OpenAI wire servers (tool round trips, streaming, images, typed output)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field

from pyflue import define_tool, init
from pyflue.errors import MaxTurnsError, ModelAPIError, OutputValidationError
from pyflue.events import Event
from pyflue.models.anthropic import AnthropicModel
from pyflue.models.base import Model, ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
)
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.session import PromptResult, Session
from pyflue.stores.memory import MemorySessionStore
from tests.models import anthropic_fixtures as afx
from tests.models import openai_fixtures as ofx
from tests.wire import WireServer

Reply = ModelResponse | str | Callable[[ModelRequest], "ModelResponse | str"]


class Script:
    """A FunctionModel function answering from a list, recording every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[ModelRequest] = []

    def __call__(self, request: ModelRequest) -> ModelResponse | str:
        self.requests.append(request)
        reply = self.replies.pop(0)
        return reply(request) if callable(reply) else reply


def calls(*items: tuple[str, str, dict[str, Any]], usage: Usage | None = None) -> ModelResponse:
    return ModelResponse(
        [ToolCallPart(cid, name, args) for cid, name, args in items], usage or Usage(requests=1), "tool_calls"
    )


def results_of(request: ModelRequest) -> list[ToolResultPart]:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return [p for p in last.parts if isinstance(p, ToolResultPart)]


def assert_consistent(history: list[UserMessage | AssistantMessage]) -> None:
    """Every tool call is answered by exactly one result in the next message."""
    for i, message in enumerate(history):
        if isinstance(message, AssistantMessage):
            ids = [p.id for p in message.parts if isinstance(p, ToolCallPart)]
            if ids:
                follow = history[i + 1]
                assert isinstance(follow, UserMessage)
                assert [p.call_id for p in follow.parts if isinstance(p, ToolResultPart)] == ids


async def session_for(model: Model, *, events: list[Event] | None = None, **config: Any) -> Session:
    harness = await init(
        model=model,
        session_store=MemorySessionStore(),
        on_event=events.append if events is not None else None,
        **config,
    )
    return await harness.session()


# -- tool round trips ------------------------------------------------------------------------------


async def test_test_model_calls_every_tool_with_schema_valid_args() -> None:
    got: list[tuple[str, Any]] = []

    @define_tool
    async def lookup_order(order_id: str, limit: int = 3) -> dict[str, Any]:
        """Look an order up by id."""
        got.append(("lookup_order", (order_id, limit)))
        return {"order_id": order_id, "status": "shipped"}

    @define_tool
    def add(a: int, b: int) -> int:
        """Add."""
        got.append(("add", (a, b)))
        return a + b

    model = TestModel()
    session = await session_for(model, tools=[lookup_order, add])
    res = await session.prompt("Where is my order 7?")
    assert sorted(got) == [("add", (0, 0)), ("lookup_order", ("a", 3))]
    # The test model says it is one, and what each tool returned.
    assert res.text.startswith("[test model] called lookup_order, add; no real model was used.")
    assert 'lookup_order: {"order_id":"a","status":"shipped"}' in res.text and "add: 0" in res.text
    assert res.usage.requests == 2
    assert res.messages == session.history
    assert [m.role for m in res.messages] == ["user", "assistant", "user", "assistant"]
    assert_consistent(session.history)
    assert len(model.requests) == 2
    assert [t.name for t in model.requests[0].tools] == ["lookup_order", "add"]


async def test_second_prompt_sees_the_whole_history_and_usage_adds_up() -> None:
    script = Script(
        calls(("c1", "echo", {"text": "hi"}), usage=Usage(10, 2, requests=1)),
        ModelResponse([TextPart("said hi")], Usage(20, 3, 5, 0, 1)),
        "again",
    )

    @define_tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    session = await session_for(FunctionModel(script), tools=[echo])
    first = await session.prompt("say hi")
    assert first.usage == Usage(30, 5, 5, 0, 2)
    assert first.text == "said hi"
    second = await session.prompt("again")
    assert second.text == "again"
    assert second.messages == session.history[4:]
    assert second.operation_id != first.operation_id
    seen = script.requests[2].messages
    assert seen == session.history[:5]
    assert results_of(script.requests[1])[0].content == "hi"


async def test_parallel_tool_calls_overlap_and_results_keep_call_order() -> None:
    a_started, b_started = anyio.Event(), anyio.Event()
    finished: list[str] = []

    @define_tool
    async def first(x: int) -> str:
        """Waits for the second tool to start: impossible unless both run at once."""
        a_started.set()
        await b_started.wait()
        await anyio.sleep(0.02)  # finish last
        finished.append("first")
        return f"first:{x}"

    @define_tool
    def second(x: int) -> str:
        """Sync, in a worker thread; waits for the first to start."""
        anyio.from_thread.run_sync(b_started.set)
        anyio.from_thread.run(a_started.wait)
        finished.append("second")
        return f"second:{x}"

    script = Script(
        calls(("c1", "first", {"x": 1}), ("c2", "second", {"x": 2}), ("c3", "first", {"x": 3})), "done"
    )
    events: list[Event] = []
    session = await session_for(FunctionModel(script), tools=[first, second], events=events)
    with anyio.fail_after(5):
        res = await session.prompt("go")
    assert res.text == "done"
    assert finished[0] == "second"  # completion order differs from call order ...
    assert [(r.call_id, r.content) for r in results_of(script.requests[1])] == [
        ("c1", "first:1"),
        ("c2", "second:2"),
        ("c3", "first:3"),
    ]  # ... results do not
    kinds = [e.type for e in events if e.type in ("tool_start", "tool_end")]
    assert kinds[:3] == ["tool_start"] * 3 and kinds[3:] == ["tool_end"] * 3


async def test_tool_errors_go_back_to_the_model_and_the_loop_continues() -> None:
    @define_tool
    async def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    script = Script(
        calls(
            ("c1", "divide", {"a": 1, "b": "zero"}),  # invalid arguments
            ("c2", "divide", {"a": 1, "b": 0}),  # the tool raises
            ("c3", "divide", {"__raw__": '{"a": 1,'}),  # malformed JSON from the model
            ("c4", "divide", {"a": 6, "b": 3}),  # fine
        ),
        lambda request: "recovered: " + results_of(request)[3].content,
    )
    events: list[Event] = []
    session = await session_for(FunctionModel(script), tools=[divide], events=events)
    res = await session.prompt("divide")
    results = results_of(script.requests[1])
    assert [r.is_error for r in results] == [True, True, True, False]
    assert results[0].content.startswith("error: invalid arguments: b: Input should be a valid integer")
    assert results[1].content == "error: ZeroDivisionError: division by zero"
    assert results[2].content.startswith("error: arguments are not a JSON object")
    assert results[3].content == "2.0"
    assert res.text == "recovered: 2.0"
    ends = {e.data["call_id"]: e.data for e in events if e.type == "tool_end"}
    assert ends["c1"]["error"]["type"] == "ToolError"
    assert ends["c2"]["error"] == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert ends["c4"]["result"] == "2.0" and "error" not in ends["c4"]
    assert all(e["duration_ms"] >= 0 for e in ends.values())
    assert_consistent(session.history)
    assert [e.data["status"] for e in events if e.type == "operation_end"] == ["completed"]


async def test_max_turns() -> None:
    counter = {"n": 0}

    def forever(request: ModelRequest) -> ModelResponse:
        counter["n"] += 1
        return calls((f"c{counter['n']}", "noop", {}))

    @define_tool
    def noop() -> str:
        """Nothing."""
        return "ok"

    events: list[Event] = []
    session = await session_for(FunctionModel(forever), tools=[noop], max_turns=3, events=events)
    with pytest.raises(MaxTurnsError, match="max_turns=3"):
        await session.prompt("loop")
    assert counter["n"] == 3
    history = session.history
    assert [m.role for m in history] == ["user"] + ["assistant", "user"] * 3
    assert_consistent(history)
    end = next(e for e in events if e.type == "operation_end")
    assert end.data["status"] == "failed" and end.data["error"]["type"] == "MaxTurnsError"


async def test_a_failed_first_model_call_leaves_no_trace() -> None:
    def boom(request: ModelRequest) -> str:
        raise ModelAPIError("HTTP 500", provider="function", status_code=500)

    events: list[Event] = []
    session = await session_for(FunctionModel(boom), events=events)
    with pytest.raises(ModelAPIError):
        await session.prompt("hi")
    assert session.history == []
    model_end = next(e for e in events if e.type == "model_end")
    assert model_end.data["error"] == {
        "type": "ModelAPIError",
        "message": "HTTP 500",
        "provider": "function",
        "status_code": 500,
    }


async def test_prompt_level_model_and_settings() -> None:
    base = Script("from base")
    other = Script("from other")
    session = await session_for(FunctionModel(base), model_settings={"temperature": 0.1, "max_tokens": 50})
    res = await session.prompt("hi", model=FunctionModel(other), model_settings={"temperature": 0.9})
    assert res.text == "from other"
    assert other.requests[0].settings == {"temperature": 0.9, "max_tokens": 50}
    assert base.requests == []
    assert (await session.prompt("hi", model="test")).text == "success (no tool calls)"


# -- typed output ----------------------------------------------------------------------------------


class Report(BaseModel):
    """A short report."""

    title: str
    score: int = Field(ge=0, le=10)


@pytest.mark.parametrize("mode", ["native", "prompted"])
async def test_typed_output_with_repair(mode: str) -> None:
    answers = [
        '{"title": "ok", "score": 11}' if mode == "native" else 'Sure! {"title": "ok", "score": 11}',
        '{"title": "Weekly", "score": 7}'
        if mode == "native"
        else 'Here:\n```json\n{"title": "Weekly", "score": 7}\n```',
    ]
    script = Script(*answers)
    session = await session_for(FunctionModel(script, output_mode=mode), instructions="Be terse.")  # type: ignore[arg-type]
    res = await session.prompt("Summarise", result=Report)
    assert res.output == Report(title="Weekly", score=7)
    first, second = script.requests
    if mode == "native":
        assert first.output is not None and first.output.name == "final_result"
        assert first.output.schema["properties"]["score"]["maximum"] == 10
        assert first.output.description == "A short report."
        assert first.instructions == "Be terse."
    else:
        assert first.output is None
        assert first.instructions is not None and first.instructions.startswith("Be terse.\n\n")
        assert "Respond with only a JSON object" in first.instructions
        assert '"score":{"maximum":10,"minimum":0' in first.instructions
    repair = second.messages[-1]
    assert isinstance(repair, UserMessage)
    assert repair.parts == [
        TextPart(
            "Your answer failed validation: score: Input should be less than or equal to 10. "
            "Answer again with only the corrected JSON."
        )
    ]
    assert [m.role for m in session.history] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("mode", ["native", "prompted"])
async def test_typed_output_final_failure(mode: str) -> None:
    script = Script(*["not json at all"] * 3)
    events: list[Event] = []
    session = await session_for(
        FunctionModel(script, output_mode=mode),  # type: ignore[arg-type]
        output_retries=2,
        events=events,
    )
    with pytest.raises(OutputValidationError, match=r"after 2 repair\(s\): the answer is not valid JSON"):
        await session.prompt("Summarise", result=Report)
    assert len(script.requests) == 3
    assert len(session.history) == 6  # prompt, answer, (repair, answer) x 2 — consistent and kept
    end = [e for e in events if e.type == "operation_end"][-1]
    assert end.data["error"]["type"] == "OutputValidationError"


@pytest.mark.parametrize("mode", ["native", "prompted"])
@pytest.mark.parametrize(
    ("result_type", "answer", "expected"),
    [(int, '{"result": 42}', 42), (list[str], '{"result": ["a", "b"]}', ["a", "b"])],
)
async def test_non_object_output_types_are_wrapped(
    mode: str, result_type: Any, answer: str, expected: Any
) -> None:
    script = Script(answer)
    session = await session_for(FunctionModel(script, output_mode=mode))  # type: ignore[arg-type]
    res = await session.prompt("how many?", result=result_type)
    assert res.output == expected
    request = script.requests[0]
    schema = request.output.schema if mode == "native" else None
    if mode == "native":
        assert schema is not None
        assert schema["type"] == "object" and schema["required"] == ["result"]
    else:
        assert request.instructions is not None and '"required":["result"]' in request.instructions


async def test_non_object_output_repairs_a_bare_value() -> None:
    script = Script("42", '{"result": 42}')
    session = await session_for(FunctionModel(script))
    assert (await session.prompt("how many?", result=int)).output == 42
    assert 'expected a JSON object with a "result" key' in script.requests[1].messages[-1].parts[0].text  # type: ignore[union-attr]


async def test_test_model_answers_typed_output_natively() -> None:
    model = TestModel()
    session = await session_for(model)
    res = await session.prompt("report", result=Report)
    assert res.output == Report(title="a", score=0)
    assert model.requests[0].output is not None
    assert (await session.prompt("n", result=list[int])).output == []


# -- streaming on offline models -------------------------------------------------------------------


async def test_stream_yields_events_then_the_result() -> None:
    async def stream(request: ModelRequest):  # type: ignore[no-untyped-def]
        for piece in ("Hel", "lo ", "there"):
            yield piece

    session = await session_for(FunctionModel(stream_function=stream))
    items = [item async for item in session.stream("hi")]
    result = items[-1]
    assert isinstance(result, PromptResult) and result.text == "Hello there"
    events = [i for i in items if isinstance(i, Event)]
    assert len(events) == len(items) - 1
    assert [e.data["text"] for e in events if e.type == "text_delta"] == ["Hel", "lo ", "there"]
    assert events[0].type == "operation_start" and events[-1].type == "operation_end"
    assert {e.operation_id for e in events} == {result.operation_id}


# -- over real HTTP: the local wire servers --------------------------------------------------------


def anthropic(wire: WireServer) -> AnthropicModel:
    return AnthropicModel("claude-haiku-4-5", api_key="k", base_url=wire.url, retry_base_delay=0.001)


@define_tool
async def get_weather(location: str) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        location: The city.
    """
    return {"location": location, "temp_c": 21}


async def test_anthropic_tool_round_trip(wire: WireServer) -> None:
    wire.json(
        afx.message(
            [afx.text("Checking."), afx.tool_use("toolu_1", "get_weather", {"location": "Paris"})],
            stop_reason="tool_use",
        )
    )
    wire.json(afx.message([afx.text("21°C in Paris.")]))
    session = await session_for(anthropic(wire), tools=[get_weather], instructions="Be brief.")
    res = await session.prompt("Weather in Paris?")
    assert res.text == "21°C in Paris."
    assert res.usage == Usage(50, 30, 0, 0, 2)
    first, second = (seen.json() for seen in wire.requests)
    assert "stream" not in first  # nobody listens: the plain request is used
    assert first["tools"][0]["input_schema"]["properties"]["location"]["description"] == "The city."
    assert second["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"location": "Paris"},
    }
    result = second["messages"][2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_1")
    assert json.loads(result["content"]) == {"location": "Paris", "temp_c": 21}


async def test_anthropic_streaming_through_session_stream(wire: WireServer) -> None:
    wire.sse(afx.WEATHER_STREAM, split=7)
    wire.sse(afx.stream_events(afx.message([afx.text("It is sunny and 21 degrees.")]), piece=4), split=11)
    session = await session_for(anthropic(wire), tools=[get_weather])
    items = [item async for item in session.stream("Weather?")]
    result = items[-1]
    assert isinstance(result, PromptResult)
    assert result.text == "It is sunny and 21 degrees."
    events = [i for i in items if isinstance(i, Event)]
    deltas = [e.data["text"] for e in events if e.type == "text_delta"]
    assert "".join(deltas) == "Checking Paris:It is sunny and 21 degrees."
    assert len(deltas) > 3
    start = next(e for e in events if e.type == "tool_start")
    assert start.data == {
        "tool": "get_weather",
        "call_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "args": {"location": "Paris", "unit": "celsius"},
    }
    end = next(e for e in events if e.type == "tool_end")
    assert end.data["error"]["type"] == "ToolError"  # the model sent an argument the tool does not take
    assert "unit: Extra inputs are not permitted" in end.data["error"]["message"]
    model_ends = [e for e in events if e.type == "model_end"]
    assert [e.data["finish_reason"] for e in model_ends] == ["tool_calls", "stop"]
    assert model_ends[0].data["usage"]["input_tokens"] == 472
    assert all(seen.json()["stream"] is True for seen in wire.requests)


async def test_openai_tool_round_trip_resolved_from_env(wire: WireServer) -> None:
    wire.json(
        ofx.completion(
            None,
            tool_calls=[ofx.tool_call("call_1", "get_weather", '{"location": "Oslo"}')],
            finish_reason="tool_calls",
            usage=ofx.usage(30, 5),
        )
    )
    wire.json(ofx.completion("Oslo: 21°C.", usage=ofx.usage(50, 6, cached=20)))
    harness = await init(
        model="openai/gpt-4.1-mini",
        tools=[get_weather],
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": wire.url},
        session_store=MemorySessionStore(),
    )
    res = await (await harness.session()).prompt("Weather in Oslo?")
    assert res.text == "Oslo: 21°C."
    assert res.usage == Usage(80, 11, 20, 0, 2)
    first, second = wire.requests
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.json()["tools"][0]["function"]["name"] == "get_weather"
    tool_message = second.json()["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_1"
    assert json.loads(tool_message["content"]) == {"location": "Oslo", "temp_c": 21}


async def test_openai_streaming_through_session_stream(wire: WireServer) -> None:
    wire.sse(
        ofx.stream(
            calls=[("call_9", "get_weather", '{"location": "Rome"}')],
            finish_reason="tool_calls",
            usage_value=ofx.usage(12, 3),
        ),
        split=13,
    )
    wire.sse(ofx.stream("Rome is warm today.", usage_value=ofx.usage(20, 5)), split=17)
    harness = await init(
        model="openai/gpt-4.1-mini",
        tools=[get_weather],
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": wire.url},
        session_store=MemorySessionStore(),
    )
    session = await harness.session()
    async with session.stream("Rome?") as events:
        items = [item async for item in events]
    result = items[-1]
    assert isinstance(result, PromptResult) and result.text == "Rome is warm today."
    assert result.usage == Usage(32, 8, 0, 0, 2)
    deltas = [i.data["text"] for i in items if isinstance(i, Event) and i.type == "text_delta"]
    assert "".join(deltas) == "Rome is warm today."
    end = next(i for i in items if isinstance(i, Event) and i.type == "tool_end")
    assert json.loads(end.data["result"]) == {"location": "Rome", "temp_c": 21}
    assert wire.requests[0].json()["stream"] is True


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


async def test_images_reach_anthropic_in_its_format(wire: WireServer) -> None:
    wire.json(afx.message([afx.text("A tiny PNG.")]))
    session = await session_for(anthropic(wire))
    res = await session.prompt(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "data": PNG, "mime_type": "image/png"},
            ImagePart("image/jpeg", url="https://example.com/cat.jpg"),
        ]
    )
    assert res.text == "A tiny PNG."
    content = wire.requests[0].json()["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    assert content[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    stored = session.history[0]
    assert isinstance(stored.parts[1], ImagePart) and stored.parts[1].data == PNG


async def test_images_reach_openai_in_its_format(wire: WireServer) -> None:
    wire.json(ofx.completion("A tiny PNG.", usage=ofx.usage(5, 3)))
    harness = await init(
        model="openai/gpt-4.1-mini",
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": wire.url},
        session_store=MemorySessionStore(),
    )
    await (await harness.session()).prompt(
        [{"type": "text", "text": "What is this?"}, {"type": "image", "data": PNG, "mime_type": "image/png"}]
    )
    user = wire.requests[0].json()["messages"][-1]
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            },
        ],
    }


async def test_typed_output_over_both_wires(wire: WireServer) -> None:
    wire.json(ofx.completion('{"title": "T", "score": 3}', usage=ofx.usage(5, 3)))
    harness = await init(
        model="openai/gpt-4.1-mini",
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": wire.url},
        session_store=MemorySessionStore(),
    )
    res = await (await harness.session()).prompt("rate", result=Report)
    assert res.output == Report(title="T", score=3)
    format_ = wire.requests[0].json()["response_format"]
    assert format_["type"] == "json_schema" and format_["json_schema"]["name"] == "final_result"

    wire.reset()
    wire.json(
        afx.message(
            [afx.tool_use("toolu_o", "final_result", {"title": "A", "score": 9})], stop_reason="tool_use"
        )
    )
    session = await session_for(anthropic(wire))
    res = await session.prompt("rate", result=Report)
    assert res.output == Report(title="A", score=9)
    body = wire.requests[0].json()
    assert body["tool_choice"] == {"type": "tool", "name": "final_result"}
    assert len(wire.requests) == 1


async def test_wire_timing_sanity(wire: WireServer) -> None:
    """Many quick prompts over one pooled connection stay fast (no per-call client setup)."""
    for _ in range(10):
        wire.json(afx.message([afx.text("ok")]))
    session = await session_for(anthropic(wire))
    started = time.perf_counter()
    for _ in range(10):
        assert (await session.prompt("ping")).text == "ok"
    assert time.perf_counter() - started < 5
    assert len(session.history) == 20
