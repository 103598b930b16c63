"""Spans of real agent runs on TestModel / FunctionModel, through the real OpenTelemetry SDK."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import define_tool, init, observe, unobserve
from pyflue.errors import RateLimitError
from pyflue.events import Event
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import TextPart, ToolCallPart
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import FRESH, attrs, is_error, named, one, one_trace, parent_of, tree


@define_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


async def test_agent_with_a_tool_gives_exactly_the_expected_tree(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[add], name="calc", id="inst-7", **FRESH())
    session = await agent.session("conv-1")
    result = await session.prompt("what is 0 + 0?", model_settings={"temperature": 0.2, "max_tokens": 64})

    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        (
            "invoke_agent calc",
            "INTERNAL",
            [
                ("chat test", "CLIENT", []),
                ("execute_tool add", "INTERNAL", []),
                ("chat test", "CLIENT", []),
            ],
        )
    ]
    assert one_trace(spans)
    assert observer.open_spans == 0

    agent_span = one(spans, "invoke_agent calc")
    assert attrs(agent_span) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "calc",
        "gen_ai.agent.id": "inst-7",
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.provider.name": "test",
        "gen_ai.request.model": "test",
        "gen_ai.usage.input_tokens": result.usage.input_tokens,
        "gen_ai.usage.output_tokens": result.usage.output_tokens,
        "pyflue.operation_id": result.operation_id,
        "pyflue.operation.kind": "prompt",
        "pyflue.operation.status": "completed",
    }
    assert agent_span.status.status_code.name == "UNSET"

    first, second = named(spans, "chat test")
    assert attrs(first) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "test",
        "gen_ai.request.model": "test",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.response.model": "test",
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.usage.input_tokens": attrs(first)["gen_ai.usage.input_tokens"],
        "gen_ai.usage.output_tokens": attrs(first)["gen_ai.usage.output_tokens"],
    }
    assert attrs(second)["gen_ai.response.finish_reasons"] == ("stop",)
    # The two calls' tokens add up to the operation's usage.
    assert (
        attrs(first)["gen_ai.usage.input_tokens"] + attrs(second)["gen_ai.usage.input_tokens"]
        == result.usage.input_tokens
    )

    tool = one(spans, "execute_tool add")
    assert attrs(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call_0_0",
        "gen_ai.agent.name": "calc",
    }
    # Siblings in time order: the first call ends before the tool starts, the tool before the second.
    assert first.end_time is not None and tool.start_time is not None
    assert first.end_time <= tool.start_time
    assert tool.end_time is not None and second.start_time is not None
    assert tool.end_time <= second.start_time
    assert agent_span.start_time is not None and agent_span.end_time is not None
    assert agent_span.start_time <= first.start_time  # type: ignore[operator]
    assert second.end_time <= agent_span.end_time  # type: ignore[operator]


async def test_span_times_are_the_events_timestamps(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[Event] = []
    observer = create_opentelemetry_observer(tracer_provider=provider)

    def both(event: Event) -> None:
        seen.append(event)
        observer(event)

    agent = await init(on_event=both, model=TestModel(), tools=[add], **FRESH())
    await (await agent.session()).prompt("go")

    spans = exporter.get_finished_spans()
    start = next(e for e in seen if e.type == "operation_start")
    end = next(e for e in seen if e.type == "operation_end")
    span = one(spans, "invoke_agent agent")
    assert span.start_time == int(start.timestamp * 1e9)
    assert span.end_time == int(end.timestamp * 1e9)
    tool_start = next(e for e in seen if e.type == "tool_start")
    assert one(spans, "execute_tool add").start_time == int(tool_start.timestamp * 1e9)


async def test_two_concurrent_tool_calls_are_two_spans_with_their_own_call_ids(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    fast_done = anyio.Event()
    order: list[str] = []

    @define_tool
    async def slow(x: int) -> str:
        """Waits for fast."""
        order.append("slow start")
        await fast_done.wait()
        order.append("slow end")
        return "slow"

    @define_tool
    async def fast(x: int) -> str:
        """Finishes first."""
        order.append("fast start")
        await anyio.sleep(0.01)
        fast_done.set()
        order.append("fast end")
        return "fast"

    events: list[Event] = []
    observer = create_opentelemetry_observer(tracer_provider=provider)

    def both(event: Event) -> None:
        events.append(event)
        observer(event)

    agent = await init(on_event=both, model=TestModel(), tools=[slow, fast], **FRESH())
    await (await agent.session()).prompt("both at once")

    # The tool events really interleaved: both started (in either order) before either ended.
    tool_events = [(e.type, e.data["tool"]) for e in events if e.type in ("tool_start", "tool_end")]
    assert sorted(tool_events[:2]) == [("tool_start", "fast"), ("tool_start", "slow")]
    assert tool_events[2:] == [("tool_end", "fast"), ("tool_end", "slow")]
    assert sorted(order[:2]) == ["fast start", "slow start"]
    assert order[2:] == ["fast end", "slow end"]

    spans = exporter.get_finished_spans()
    agent_span = one(spans, "invoke_agent agent")
    slow_span, fast_span = one(spans, "execute_tool slow"), one(spans, "execute_tool fast")
    assert attrs(slow_span)["gen_ai.tool.call.id"] == "call_0_0"
    assert attrs(fast_span)["gen_ai.tool.call.id"] == "call_0_1"
    assert parent_of(slow_span, spans) is agent_span
    assert parent_of(fast_span, spans) is agent_span
    # The spans overlap in time, and each ended at its own tool_end.
    assert max(slow_span.start_time, fast_span.start_time) < fast_span.end_time < slow_span.end_time  # type: ignore[operator,type-var]
    assert observer.open_spans == 0


async def test_the_same_tool_called_twice_in_one_turn_never_overwrites_a_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """PyFlue 0.2.0 keyed tool spans by tool name, so a repeated call replaced the first one."""
    model = TestModel(tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})])
    observer = create_opentelemetry_observer(tracer_provider=provider, capture_content=True)
    agent = await init(on_event=observer, model=model, tools=[add], **FRESH())
    await (await agent.session()).prompt("twice")

    spans = named(exporter.get_finished_spans(), "execute_tool add")
    assert len(spans) == 2
    by_id = {attrs(s)["gen_ai.tool.call.id"]: attrs(s) for s in spans}
    assert by_id["call_0_0"]["gen_ai.tool.call.result"] == "3"
    assert by_id["call_0_1"]["gen_ai.tool.call.result"] == "7"


async def test_duplicate_call_ids_from_a_provider_still_give_one_span_per_call(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Some OpenAI-compatible servers repeat call ids; every call still gets its own span."""
    turn = 0

    def respond(request: ModelRequest) -> ModelResponse:
        nonlocal turn
        turn += 1
        if turn == 1:
            calls = [
                ToolCallPart("dup", "add", {"a": 1, "b": 1}),
                ToolCallPart("dup", "add", {"a": 2, "b": 2}),
            ]
            return ModelResponse(calls, Usage(10, 5, requests=1), "tool_calls")  # type: ignore[arg-type]
        return ModelResponse([TextPart("done")], Usage(20, 1, requests=1), "stop")

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=FunctionModel(respond), tools=[add], **FRESH())
    await (await agent.session()).prompt("dups")

    spans = named(exporter.get_finished_spans(), "execute_tool add")
    assert len(spans) == 2
    assert observer.open_spans == 0


async def test_a_failing_model_call_sets_error_on_the_chat_and_the_agent_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def fail(request: ModelRequest) -> ModelResponse:
        raise RateLimitError("slow down", provider="function", status_code=429)

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=FunctionModel(fail, model_name="flaky-1"), **FRESH())
    with pytest.raises(RateLimitError):
        await (await agent.session()).prompt("hi")

    spans = exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent agent", "INTERNAL", [("chat flaky-1", "CLIENT", [])])]
    chat = one(spans, "chat flaky-1")
    assert is_error(chat)
    assert attrs(chat)["error.type"] == "RateLimitError"
    assert chat.status.description == "slow down"
    assert "gen_ai.response.finish_reasons" not in attrs(chat)
    agent_span = one(spans, "invoke_agent agent")
    assert is_error(agent_span)
    assert attrs(agent_span)["error.type"] == "RateLimitError"
    assert attrs(agent_span)["pyflue.operation.status"] == "failed"
    assert observer.open_spans == 0


async def test_a_failing_tool_sets_error_on_its_span_only(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @define_tool
    def broken(x: int) -> int:
        """Always fails."""
        raise ValueError("no luck")

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[broken], **FRESH())
    await (await agent.session()).prompt("try")

    spans = exporter.get_finished_spans()
    tool = one(spans, "execute_tool broken")
    assert is_error(tool)
    assert attrs(tool)["error.type"] == "ValueError"
    # The model saw the error as a tool result and answered: the operation succeeded.
    agent_span = one(spans, "invoke_agent agent")
    assert not is_error(agent_span)
    assert attrs(agent_span)["pyflue.operation.status"] == "completed"


async def test_content_is_not_captured_by_default(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[add], **FRESH())
    await (await agent.session()).prompt("a secret prompt")

    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    for span in spans:
        assert not CONTENT_KEYS & set(attrs(span)), span.name
        assert "a secret prompt" not in json.dumps(attrs(span), default=str)


async def test_content_is_captured_with_capture_content(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider, capture_content=True)
    agent = await init(on_event=observer, model=TestModel(text="zero it is"), tools=[add], **FRESH())
    await (await agent.session()).prompt("what is 0 + 0?")

    spans = exporter.get_finished_spans()
    agent_span = attrs(one(spans, "invoke_agent agent"))
    assert json.loads(agent_span["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "what is 0 + 0?"}]}
    ]
    assert json.loads(agent_span["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "zero it is"}], "finish_reason": "stop"}
    ]
    tool = attrs(one(spans, "execute_tool add"))
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"a": 0, "b": 0}
    assert tool["gen_ai.tool.call.result"] == "0"
    first, second = named(spans, "chat test")
    assert "gen_ai.output.messages" not in attrs(first)  # tool calls only: they are the tool spans
    assert json.loads(attrs(second)["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "zero it is"}], "finish_reason": "stop"}
    ]


async def test_streaming_gives_the_same_spans_as_prompt(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """PyFlue 0.2.0 emitted nothing for streamed runs."""
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[add], **FRESH())
    session = await agent.session()
    deltas = 0
    async for item in session.stream("stream it"):
        if isinstance(item, Event) and item.type == "text_delta":
            deltas += 1
    assert deltas > 0
    assert tree(exporter.get_finished_spans()) == [
        (
            "invoke_agent agent",
            "INTERNAL",
            [("chat test", "CLIENT", []), ("execute_tool add", "INTERNAL", []), ("chat test", "CLIENT", [])],
        )
    ]


async def test_an_active_span_becomes_the_parent_of_the_operation(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[add], **FRESH())
    session = await agent.session()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /chat", kind=trace.SpanKind.SERVER):
        await session.prompt("inside a request")
    # Outside any span the next operation is a root.
    await session.prompt("no request")

    spans = exporter.get_finished_spans()
    request = one(spans, "POST /chat")
    first, second = named(spans, "invoke_agent agent")
    assert parent_of(first, spans) is request
    assert first.context.trace_id == request.context.trace_id  # type: ignore[union-attr]
    assert second.parent is None
    assert second.context.trace_id != request.context.trace_id  # type: ignore[union-attr]
    # Model and tool spans still hang off the operation, not off the request span.
    for chat in named(spans, "chat test")[:2]:
        assert parent_of(chat, spans) is first


async def test_observe_traces_every_operation_in_the_process(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    observe(observer)
    try:
        one_agent = await init(model=TestModel(), name="first", **FRESH())
        other = await init(model=TestModel(), name="second", **FRESH())
        await (await one_agent.session()).prompt("a")
        await (await other.session("s2")).prompt("b")
    finally:
        unobserve(observer)
    names = sorted(s.name for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent"))
    assert names == ["invoke_agent first", "invoke_agent second"]

    exporter.clear()
    await (await one_agent.session()).prompt("after unobserve")
    assert exporter.get_finished_spans() == ()


async def test_two_observers_see_the_same_events(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[Event] = []
    observer = create_opentelemetry_observer(tracer_provider=provider)
    observe(observer)
    try:
        agent = await init(on_event=seen.append, model=TestModel(), tools=[add], **FRESH())
        result = await (await agent.session()).prompt("hello")
    finally:
        unobserve(observer)

    spans = exporter.get_finished_spans()
    starts = [e for e in seen if e.type.endswith("_start")]
    assert [e.type for e in starts] == ["operation_start", "model_start", "tool_start", "model_start"]
    assert len(spans) == len(starts)
    assert {e.operation_id for e in seen} == {result.operation_id}
    assert attrs(one(spans, "invoke_agent agent"))["pyflue.operation_id"] == result.operation_id
    call_ids = {e.data["call_id"] for e in seen if e.type == "tool_start"}
    assert call_ids == {attrs(s)["gen_ai.tool.call.id"] for s in named(spans, "execute_tool add")}


async def test_the_seed_example_works_as_written(global_exporter: InMemorySpanExporter) -> None:
    from pyflue import init
    from pyflue.observability import create_opentelemetry_observer

    agent = await init(on_event=create_opentelemetry_observer())
    # No agent and no model: the model is chosen at the first prompt.
    session = await agent.session()
    result = await session.prompt("hello", model="test")

    spans = global_exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent agent", "INTERNAL", [("chat test", "CLIENT", [])])]
    assert attrs(one(spans, "invoke_agent agent"))["pyflue.operation_id"] == result.operation_id


async def test_a_broken_exporter_never_breaks_the_run(provider: TracerProvider) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Broken(SpanExporter):
        calls = 0

        def export(self, spans: Any) -> SpanExportResult:
            Broken.calls += 1
            raise ConnectionError("collector is down")

    provider.add_span_processor(SimpleSpanProcessor(Broken()))
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(text="fine"), tools=[add], **FRESH())
    result = await (await agent.session()).prompt("go")
    assert result.text == "fine"
    assert Broken.calls == 4  # it was really called, and raised, for every span
    assert observer.open_spans == 0


async def test_a_broken_tracer_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenTracer(trace.NoOpTracer):
        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            raise RuntimeError("tracer is broken")

    class BrokenProvider(trace.NoOpTracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return BrokenTracer()

    seen: list[Event] = []
    observer = create_opentelemetry_observer(tracer_provider=BrokenProvider())
    observe(observer)
    try:
        agent = await init(on_event=seen.append, model=TestModel(text="still fine"), tools=[add], **FRESH())
        with caplog.at_level("ERROR", logger="pyflue.observability"):
            result = await (await agent.session()).prompt("go")
    finally:
        unobserve(observer)
    assert result.text == "still fine"
    assert [e.type for e in seen if e.type.endswith("_end")] == [
        "model_end",
        "tool_end",
        "model_end",
        "operation_end",
    ]
    # Logged once, not once per event.
    assert len([r for r in caplog.records if "OpenTelemetry observer failed" in r.getMessage()]) == 1


async def test_a_raising_observer_beside_otel_breaks_neither_the_run_nor_the_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    calls = 0

    def raising(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("user observer bug")

    observer = create_opentelemetry_observer(tracer_provider=provider)
    observe(observer)
    try:
        agent = await init(on_event=raising, model=TestModel(text="ok"), tools=[add], **FRESH())
        result = await (await agent.session()).prompt("go")
    finally:
        unobserve(observer)
    assert result.text == "ok"
    assert calls > 4
    assert len(exporter.get_finished_spans()) == 4
