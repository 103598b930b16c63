"""A dispatched input's delivery is a span in the dispatching caller's trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import Dispatcher, create_agent, dispatch, observe, unobserve, wait_dispatch
from pyflue.models.testing import FunctionModel
from pyflue.observability import create_opentelemetry_observer
from pyflue.stores.dispatch_memory import MemoryDispatchStore
from pyflue.stores.memory import MemorySessionStore
from tests.otel.spans import one, parent_of


async def test_a_delivery_joins_the_callers_trace_and_holds_its_operation(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    observe(observer)
    try:
        agent = create_agent(lambda ctx: {"model": FunctionModel(lambda r: "done")}, name="courier")
        store = MemoryDispatchStore()
        with provider.get_tracer("app").start_as_current_span("handle request") as caller:
            receipt = await dispatch(agent, id="u", input="deliver this", store=store)
        async with Dispatcher(
            agents={"courier": agent}, store=store, session_store=MemorySessionStore(), poll_interval=0.02
        ):
            await wait_dispatch(receipt.dispatch_id, timeout=10, store=store)
    finally:
        unobserve(observer)
        observer.shutdown()
    spans = exporter.get_finished_spans()
    delivery = one(spans, "deliver_dispatch courier")
    assert delivery.context.trace_id == caller.get_span_context().trace_id
    assert delivery.parent is not None and delivery.parent.span_id == caller.get_span_context().span_id
    assert delivery.attributes["pyflue.dispatch_id"] == receipt.dispatch_id
    assert delivery.attributes["pyflue.dispatch.status"] == "completed"
    operation = next(s for s in spans if s.name.startswith("invoke_agent"))
    assert parent_of(operation, spans) is delivery
    handle = one(spans, "handle request")
    assert [e.name for e in handle.events] == ["dispatch_accepted"]
