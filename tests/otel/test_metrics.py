"""GenAI metrics through the real SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from pyflue import define_tool, init
from pyflue.errors import ModelConnectionError
from pyflue.models.base import ModelRequest, ModelResponse
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import FRESH, Events


@define_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: Any) -> list[HistogramDataPoint]:
    return list(metric.data.data_points)


async def test_token_usage_and_durations_are_recorded(
    provider: TracerProvider, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider, meter_provider=meter_provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[add], name="calc", **FRESH())
    result = await (await agent.session()).prompt("sum")

    found = metrics(metric_reader)
    assert set(found) == {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.invoke_agent.duration",
        "gen_ai.execute_tool.duration",
    }
    usage = found["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points(usage)}
    assert set(by_type) == {"input", "output"}
    assert by_type["input"].sum == result.usage.input_tokens
    assert by_type["output"].sum == result.usage.output_tokens
    assert by_type["input"].count == 2  # two model calls
    assert dict(by_type["input"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "test",
        "gen_ai.request.model": "test",
        "gen_ai.response.model": "test",
        "gen_ai.token.type": "input",
    }
    assert list(by_type["input"].explicit_bounds)[:3] == [1.0, 4.0, 16.0]

    duration = found["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (point,) = points(duration)
    assert point.count == 2
    assert 0 < point.sum < 5  # seconds, not milliseconds
    assert list(point.explicit_bounds)[:2] == [0.01, 0.02]

    (agent_point,) = points(found["gen_ai.invoke_agent.duration"])
    assert dict(agent_point.attributes) == {"gen_ai.agent.name": "calc"}
    assert agent_point.count == 1
    assert agent_point.sum >= point.sum  # the operation spans both model calls
    (tool_point,) = points(found["gen_ai.execute_tool.duration"])
    assert dict(tool_point.attributes) == {
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.agent.name": "calc",
    }


async def test_a_failed_call_records_its_duration_with_error_type_and_no_tokens(
    provider: TracerProvider, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    def fail(request: ModelRequest) -> ModelResponse:
        raise ModelConnectionError("refused", provider="function")

    observer = create_opentelemetry_observer(tracer_provider=provider, meter_provider=meter_provider)
    agent = await init(on_event=observer, model=FunctionModel(fail), **FRESH())
    try:
        await (await agent.session()).prompt("x")
    except ModelConnectionError:
        pass
    found = metrics(metric_reader)
    assert "gen_ai.client.token.usage" not in found
    (point,) = points(found["gen_ai.client.operation.duration"])
    assert point.attributes["error.type"] == "ModelConnectionError"
    (agent_point,) = points(found["gen_ai.invoke_agent.duration"])
    assert agent_point.attributes["error.type"] == "ModelConnectionError"


def test_workflow_duration_is_the_run_span_duration(
    provider: TracerProvider, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider, meter_provider=meter_provider)
    ev = Events(run_id="workflow:w:1")
    observer(ev("run_start", 100.0, {"workflow": "w", "payload": {}}))
    observer(ev("run_end", 112.5, {"status": "completed"}))  # no duration_ms: the span's own length
    (point,) = points(metrics(metric_reader)["gen_ai.workflow.duration"])
    assert point.sum == 12.5
    assert dict(point.attributes) == {"gen_ai.workflow.name": "w"}
