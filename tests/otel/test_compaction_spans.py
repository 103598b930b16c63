"""End to end: compaction (automatic at the threshold, and on demand) as spans."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import CompactionConfig, init
from pyflue.models.testing import TestModel
from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import FRESH, attrs, named, one, parent_of, tree

LONG = "hello " * 60


async def test_compaction_at_the_threshold_nests_the_summary_call_under_a_compaction_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    compaction = CompactionConfig(context_window_tokens=700, reserve_tokens=100, keep_recent_tokens=50)
    agent = await init(
        on_event=observer, model=TestModel(text="word " * 40), compaction=compaction, **FRESH()
    )
    session = await agent.session()
    for _ in range(10):  # the history grows ~110 tokens a prompt: the 6th crosses 600
        exporter.clear()
        await session.prompt(LONG)
        if any(s.name.startswith("compaction") for s in exporter.get_finished_spans()):
            break
    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        (
            "invoke_agent agent",
            "INTERNAL",
            [("compaction agent", "INTERNAL", [("chat test", "CLIENT", [])]), ("chat test", "CLIENT", [])],
        )
    ]
    span = one(spans, "compaction agent")
    values = attrs(span)
    assert values["pyflue.compaction.reason"] == "threshold"
    assert values["pyflue.compaction.tokens_after"] < values["pyflue.compaction.tokens_before"]
    assert values["pyflue.compaction.messages_summarised"] > 0
    summary_call, answer_call = named(spans, "chat test")
    assert parent_of(summary_call, spans) is span
    assert parent_of(answer_call, spans) is one(spans, "invoke_agent agent")
    assert observer.open_spans == 0


async def test_session_compact_is_an_operation_with_a_compaction_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(text="word " * 40), **FRESH())
    session = await agent.session()
    for _ in range(3):
        await session.prompt(LONG)
    exporter.clear()
    await session.compact(keep_recent=0)

    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        ("invoke_agent agent", "INTERNAL", [("compaction agent", "INTERNAL", [("chat test", "CLIENT", [])])])
    ]
    assert attrs(one(spans, "invoke_agent agent"))["pyflue.operation.kind"] == "compact"
    assert attrs(one(spans, "compaction agent"))["pyflue.compaction.reason"] == "manual"
    assert attrs(one(spans, "compaction agent"))["pyflue.compaction.messages_summarised"] == 6
