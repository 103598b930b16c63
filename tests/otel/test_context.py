"""Our spans are current between their start and end events, in the emitting task only: spans made
inside a tool nest under its span, and the caller's context is back as it was afterwards."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import define_tool, init
from pyflue.errors import AbortedError, ModelConnectionError
from pyflue.models.base import ModelRequest, ModelResponse
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import FRESH, one, parent_of


async def test_spans_made_inside_tools_nest_under_their_tool_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = provider.get_tracer("app")
    both_started = anyio.Event()
    running = 0

    async def meet() -> None:
        nonlocal running
        running += 1
        if running == 2:
            both_started.set()
        await both_started.wait()

    @define_tool
    async def fetch(x: int) -> str:
        """Async tool."""
        await meet()
        with app.start_as_current_span("db query"):
            await anyio.lowlevel.checkpoint()
        return "rows"

    @define_tool
    async def render(x: int) -> str:
        """Another async tool, running at the same time."""
        await meet()
        with app.start_as_current_span("template"):
            await anyio.lowlevel.checkpoint()
        return "html"

    @define_tool
    def blocking(x: int) -> str:
        """A sync tool: runs in a worker thread, which gets the task's context."""
        with app.start_as_current_span("file read"):
            return "bytes"

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[fetch, render], **FRESH())
    await (await agent.session()).prompt("both")
    single = await init(on_event=observer, model=TestModel(), tools=[blocking], name="single", **FRESH())
    await (await single.session()).prompt("one")

    spans = exporter.get_finished_spans()
    assert parent_of(one(spans, "db query"), spans) is one(spans, "execute_tool fetch")
    assert parent_of(one(spans, "template"), spans) is one(spans, "execute_tool render")
    assert parent_of(one(spans, "file read"), spans) is one(spans, "execute_tool blocking")


async def test_an_http_call_inside_a_model_call_nests_under_the_chat_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """What an instrumented HTTP client (httpx, aiohttp) does inside a provider call."""
    client = provider.get_tracer("http-client")

    async def answer(request: ModelRequest) -> str:
        with client.start_as_current_span("POST", kind=trace.SpanKind.CLIENT):
            return "hi"

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=FunctionModel(answer, model_name="m"), **FRESH())
    await (await agent.session()).prompt("x")
    spans = exporter.get_finished_spans()
    assert parent_of(one(spans, "POST"), spans) is one(spans, "chat m")


@pytest.mark.parametrize("outcome", ["completed", "failed", "aborted"])
async def test_the_callers_context_is_restored_whatever_the_outcome(
    provider: TracerProvider, exporter: InMemorySpanExporter, outcome: str
) -> None:
    started = anyio.Event()

    @define_tool
    async def work(x: int) -> str:
        """Hangs when the test aborts."""
        if outcome == "aborted":
            started.set()
            await anyio.sleep_forever()
        return "done"

    def respond(request: ModelRequest) -> ModelResponse | str:
        if outcome == "failed":
            raise ModelConnectionError("refused")
        return TestModel()._respond(request)

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=FunctionModel(respond), tools=[work], **FRESH())
    session = await agent.session()
    request = provider.get_tracer("app").start_span("request")
    with trace.use_span(request, end_on_exit=True):
        if outcome == "completed":
            await session.prompt("go")
        elif outcome == "failed":
            with pytest.raises(ModelConnectionError):
                await session.prompt("go")
        else:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    with pytest.raises(AbortedError):
                        await session.prompt("go")

                tg.start_soon(run)
                await started.wait()
                await session.abort()
        assert trace.get_current_span() is request
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert observer.open_spans == 0
    # The operation still hangs off the request.
    spans = exporter.get_finished_spans()
    assert parent_of(one(spans, "invoke_agent agent"), spans) is one(spans, "request")


async def test_without_an_sdk_the_users_active_span_is_never_hidden(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A no-op tracer makes invalid spans: they must not replace the user's current span."""
    app = provider.get_tracer("app")

    @define_tool
    async def fetch(x: int) -> str:
        """Makes a span of its own."""
        with app.start_as_current_span("db query"):
            return "rows"

    observer = create_opentelemetry_observer(tracer_provider=trace.NoOpTracerProvider())
    agent = await init(on_event=observer, model=TestModel(), tools=[fetch], **FRESH())
    with app.start_as_current_span("request"):
        await (await agent.session()).prompt("go")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["db query", "request"]
    assert parent_of(one(spans, "db query"), spans) is one(spans, "request")


def test_an_end_event_from_another_task_leaves_that_tasks_context_alone(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A run can end in a task other than the one it started in (cancelled by id): that task's own
    current span must survive the observer restoring the run's starting context."""
    import contextvars

    from tests.otel.spans import Events

    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id="workflow:w:1")
    starter, ender = contextvars.copy_context(), contextvars.copy_context()
    starter.run(observer, ev("run_start", 1.0, {"workflow": "w", "payload": {}}))
    assert starter.run(lambda: trace.get_current_span().name) == "invoke_workflow w"  # type: ignore[attr-defined]

    def end_inside_a_span() -> str:
        with provider.get_tracer("app").start_as_current_span("canceller") as mine:
            observer(ev("run_end", 2.0, {"status": "cancelled"}))
            assert trace.get_current_span() is mine
            return "ok"

    assert ender.run(end_inside_a_span) == "ok"
    assert {s.name for s in exporter.get_finished_spans()} == {"invoke_workflow w", "canceller"}
