"""Fixtures for the OpenTelemetry observer tests: the real SDK with in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(autouse=True)
def _isolated_context() -> Iterator[None]:
    """Hand-fed events (the catalogue tests) run in the test's own thread context, where overlapping
    starts and ends leave some span current; the next test must not inherit it."""
    saved = context.get_current()
    yield
    context.attach(saved)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    meters = MeterProvider(metric_readers=[metric_reader], shutdown_on_exit=False)
    yield meters
    meters.shutdown()


_GLOBAL_EXPORTER = InMemorySpanExporter()
_global_installed = False


@pytest.fixture
def global_exporter() -> InMemorySpanExporter:
    """An exporter on the process's global tracer provider (which can be set only once)."""
    global _global_installed
    if not _global_installed:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            current.add_span_processor(SimpleSpanProcessor(_GLOBAL_EXPORTER))
        else:
            global_provider = TracerProvider(shutdown_on_exit=False)
            global_provider.add_span_processor(SimpleSpanProcessor(_GLOBAL_EXPORTER))
            trace.set_tracer_provider(global_provider)
        _global_installed = True
    _GLOBAL_EXPORTER.clear()
    return _GLOBAL_EXPORTER
