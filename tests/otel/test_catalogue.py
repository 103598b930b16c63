"""The whole event catalogue, fed by hand through the observer: workflow runs, logs, subagent tasks,
compaction, interleaved concurrent work, and events the observer must tolerate.

These build the events as API.md's catalogue defines them, so they pin the mapping independently of
the code that emits them (the end-to-end tests of workflows and tasks sit beside these)."""

from __future__ import annotations

import json

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import Events, attrs, is_error, one, one_trace, parent_of, tree

RUN = "workflow:triage:01JRUN"
T0 = 1_750_000_000.0


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


def test_a_workflow_run_with_interleaved_operations_tools_tasks_and_compaction_is_one_tree(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN, agent="triager", instance_id="ticket-9")
    usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 80, "cache_write_tokens": 0}
    stream = [
        ev("run_start", T0, {"workflow": "triage", "payload": {"ticket": 9}}),
        ev("log", T0 + 0.1, {"level": "info", "message": "starting", "fields": {"ticket": 9, "tags": ["a"]}}),
        # Two operations of the run on two sessions, concurrently.
        ev("operation_start", T0 + 1, {"kind": "prompt", "input": "classify"}, op="opA", session="s1"),
        ev("operation_start", T0 + 1.5, {"kind": "prompt", "input": "summarise"}, op="opB", session="s2"),
        ev(
            "model_start",
            T0 + 2,
            {"provider": "anthropic", "model": "claude-x", "settings": {"max_tokens": 512, "top_p": 0.9}},
            op="opA",
        ),
        ev("model_start", T0 + 2.1, {"provider": "openai", "model": "gpt-y", "settings": {}}, op="opB"),
        ev(
            "model_end",
            T0 + 3,
            {
                "response_id": "msg_1",
                "response_model": "claude-x-2025",
                "finish_reason": "tool_calls",
                "usage": usage,
                "duration_ms": 1000.0,
            },
            op="opA",
        ),
        # opA runs two tools at once; one of them delegates to a subagent task.
        ev("tool_start", T0 + 3.1, {"tool": "lookup", "call_id": "c1", "args": {"q": 1}}, op="opA"),
        ev("tool_start", T0 + 3.2, {"tool": "delegate", "call_id": "c2", "args": {}}, op="opA"),
        ev(
            "task_start",
            T0 + 3.3,
            {"agent": "researcher", "task_operation_id": "opT", "call_id": "c2"},
            op="opA",
        ),
        ev(
            "operation_start",
            T0 + 3.4,
            {"kind": "task", "input": "research"},
            op="opT",
            session="task-s",
            parent="opA",
            agent="researcher",
        ),
        ev("model_end", T0 + 3.5, {"finish_reason": "stop", "usage": usage, "duration_ms": 1400.0}, op="opB"),
        ev(
            "tool_end",
            T0 + 3.6,
            {"tool": "lookup", "call_id": "c1", "result": "found", "duration_ms": 500},
            op="opA",
        ),
        ev(
            "model_start",
            T0 + 4,
            {"provider": "test", "model": "test", "settings": {}},
            op="opT",
            agent="researcher",
        ),
        ev("model_end", T0 + 4.5, {"finish_reason": "stop", "usage": usage}, op="opT", agent="researcher"),
        ev(
            "operation_end",
            T0 + 4.6,
            {"status": "completed", "text": "notes", "usage": usage, "duration_ms": 1200},
            op="opT",
            session="task-s",
            parent="opA",
            agent="researcher",
        ),
        ev("task_end", T0 + 4.7, {"agent": "researcher", "task_operation_id": "opT"}, op="opA"),
        ev("tool_end", T0 + 4.8, {"tool": "delegate", "call_id": "c2", "result": "notes"}, op="opA"),
        ev(
            "operation_end",
            T0 + 5,
            {"status": "completed", "text": "short", "usage": usage},
            op="opB",
            session="s2",
        ),
        # opA compacts before its next call; the summariser's model call sits inside the compaction.
        ev(
            "compaction_start",
            T0 + 5.1,
            {"reason": "threshold", "tokens_before": 9000, "messages_summarised": 6},
            op="opA",
        ),
        ev("model_start", T0 + 5.2, {"provider": "anthropic", "model": "claude-x", "settings": {}}, op="opA"),
        ev("model_end", T0 + 5.6, {"finish_reason": "stop", "usage": usage}, op="opA"),
        ev(
            "compaction_end",
            T0 + 5.7,
            {"reason": "threshold", "tokens_before": 9000, "tokens_after": 1200, "messages_summarised": 6},
            op="opA",
        ),
        ev("model_start", T0 + 6, {"provider": "anthropic", "model": "claude-x", "settings": {}}, op="opA"),
        ev("model_end", T0 + 6.5, {"finish_reason": "stop", "usage": usage}, op="opA"),
        ev("log", T0 + 6.6, {"level": "warning", "message": "inside A", "fields": {}}, op="opA"),
        ev("operation_end", T0 + 7, {"status": "completed", "text": "bug", "usage": usage}, op="opA"),
        ev("run_end", T0 + 8, {"status": "completed", "result": {"label": "bug"}, "duration_ms": 8000}),
    ]
    for event in stream:
        observer(event)

    spans = exporter.get_finished_spans()
    assert observer.open_spans == 0
    assert one_trace(spans)
    assert tree(spans) == [
        (
            "invoke_workflow triage",
            "INTERNAL",
            [
                (
                    "invoke_agent triager",
                    "INTERNAL",
                    [
                        ("chat claude-x", "CLIENT", []),
                        ("execute_tool lookup", "INTERNAL", []),
                        (
                            "execute_tool delegate",
                            "INTERNAL",
                            [("invoke_agent researcher", "INTERNAL", [("chat test", "CLIENT", [])])],
                        ),
                        ("compaction triager", "INTERNAL", [("chat claude-x", "CLIENT", [])]),
                        ("chat claude-x", "CLIENT", []),
                    ],
                ),
                ("invoke_agent triager", "INTERNAL", [("chat gpt-y", "CLIENT", [])]),
            ],
        )
    ]

    run = one(spans, "invoke_workflow triage")
    assert attrs(run) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "triage",
        "pyflue.run_id": RUN,
        "pyflue.run.status": "completed",
    }
    assert (run.start_time, run.end_time) == (ns(T0), ns(T0 + 8))
    assert [(e.name, dict(e.attributes or {})) for e in run.events] == [
        (
            "log",
            {
                "log.level": "info",
                "log.message": "starting",
                "pyflue.log.ticket": 9,
                "pyflue.log.tags": '["a"]',
            },
        )
    ]

    op_a = next(
        s for s in spans if s.name.startswith("invoke_agent") and attrs(s)["pyflue.operation_id"] == "opA"
    )
    assert attrs(op_a)["gen_ai.conversation.id"] == "s1"
    assert attrs(op_a)["gen_ai.agent.id"] == "ticket-9"
    assert attrs(op_a)["pyflue.run_id"] == RUN
    assert attrs(op_a)["gen_ai.usage.cache_read.input_tokens"] == 80
    assert "gen_ai.usage.cache_creation.input_tokens" not in attrs(op_a)
    assert [e.name for e in op_a.events] == ["log"]
    assert (op_a.start_time, op_a.end_time) == (ns(T0 + 1), ns(T0 + 7))

    first_chat = min((s for s in spans if s.name == "chat claude-x"), key=lambda s: s.start_time or 0)
    assert attrs(first_chat) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.conversation.id": "s1",
        "gen_ai.response.id": "msg_1",
        "gen_ai.response.model": "claude-x-2025",
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 80,
    }
    assert (first_chat.start_time, first_chat.end_time) == (ns(T0 + 2), ns(T0 + 3))

    task = one(spans, "invoke_agent researcher")
    assert attrs(task)["pyflue.parent_operation_id"] == "opA"
    assert attrs(task)["gen_ai.conversation.id"] == "task-s"
    assert attrs(task)["pyflue.operation.kind"] == "task"
    assert parent_of(task, spans) is one(spans, "execute_tool delegate")

    compaction = one(spans, "compaction triager")
    assert attrs(compaction) == {
        "gen_ai.agent.name": "triager",
        "gen_ai.conversation.id": "s1",
        "pyflue.operation_id": "opA",
        "pyflue.compaction.reason": "threshold",
        "pyflue.compaction.tokens_before": 9000,
        "pyflue.compaction.tokens_after": 1200,
        "pyflue.compaction.messages_summarised": 6,
    }


def test_a_task_without_a_call_id_hangs_off_the_parent_operation(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """``session.task()`` called from workflow code (no tool call) nests under the operation."""
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events()
    for event in [
        ev("operation_start", T0, {"kind": "prompt"}, op="p"),
        ev("task_start", T0 + 1, {"agent": "helper", "task_operation_id": "t"}, op="p"),
        ev("operation_start", T0 + 2, {"kind": "task"}, op="t", parent="p", agent="helper", session="child"),
        ev(
            "operation_end",
            T0 + 3,
            {"status": "completed"},
            op="t",
            parent="p",
            agent="helper",
            session="child",
        ),
        ev("task_end", T0 + 4, {"agent": "helper", "task_operation_id": "t"}, op="p"),
        ev("operation_end", T0 + 5, {"status": "completed"}, op="p"),
    ]:
        observer(event)
    assert tree(exporter.get_finished_spans()) == [
        ("invoke_agent agent", "INTERNAL", [("invoke_agent helper", "INTERNAL", [])])
    ]


def test_a_task_that_never_started_is_reported_on_its_parent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events()
    for event in [
        ev("operation_start", T0, {"kind": "prompt"}, op="p"),
        ev("task_start", T0 + 1, {"agent": "ghost", "task_operation_id": "t"}, op="p"),
        ev(
            "task_end",
            T0 + 2,
            {
                "agent": "ghost",
                "task_operation_id": "t",
                "error": {"type": "UnknownAgentError", "message": "no"},
            },
            op="p",
        ),
        ev("operation_end", T0 + 3, {"status": "completed"}, op="p"),
    ]:
        observer(event)
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert event.name == "pyflue.task_failed"
    assert dict(event.attributes or {}) == {
        "gen_ai.agent.name": "ghost",
        "error.type": "UnknownAgentError",
        "pyflue.task_operation_id": "t",
    }
    assert event.timestamp == ns(T0 + 2)


def test_a_cancelled_run_ends_every_span_under_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN)
    for event in [
        ev("run_start", T0, {"workflow": "triage", "payload": {}}),
        ev("operation_start", T0 + 1, {"kind": "prompt"}, op="o"),
        ev("model_start", T0 + 2, {"provider": "test", "model": "test", "settings": {}}, op="o"),
        ev("model_end", T0 + 3, {"finish_reason": "tool_calls", "usage": {}}, op="o"),
        ev("tool_start", T0 + 4, {"tool": "slow", "call_id": "c"}, op="o"),
        # Cancelled by id: no tool_end, no operation_end reach the observer before the run ends.
        ev(
            "run_end",
            T0 + 5,
            {"status": "cancelled", "error": {"type": "RunCancelledError", "message": "by id"}},
        ),
    ]:
        observer(event)
    spans = exporter.get_finished_spans()
    assert observer.open_spans == 0
    assert {s.name for s in spans} == {
        "invoke_workflow triage",
        "invoke_agent agent",
        "chat test",
        "execute_tool slow",
    }
    run = one(spans, "invoke_workflow triage")
    assert is_error(run)
    assert attrs(run)["error.type"] == "cancelled"
    assert attrs(run)["pyflue.run.status"] == "cancelled"
    for name in ("invoke_agent agent", "execute_tool slow"):
        span = one(spans, name)
        assert is_error(span)
        assert span.end_time == ns(T0 + 5)
    assert attrs(one(spans, "invoke_agent agent"))["pyflue.operation.status"] == "interrupted"
    assert not is_error(one(spans, "chat test"))


def test_a_failed_run_carries_its_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN)
    observer(ev("run_start", T0, {"workflow": "triage", "payload": {}}))
    observer(ev("run_end", T0 + 1, {"status": "failed", "error": {"type": "KeyError", "message": "'x'"}}))
    (run,) = exporter.get_finished_spans()
    assert is_error(run)
    assert attrs(run)["error.type"] == "KeyError"
    assert run.status.description == "'x'"


def test_run_payload_and_result_are_content(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    for capture in (False, True):
        exporter.clear()
        observer = create_opentelemetry_observer(tracer_provider=provider, capture_content=capture)
        ev = Events(run_id=RUN)
        observer(ev("run_start", T0, {"workflow": "triage", "payload": {"email": "a@b.c"}}))
        observer(ev("custom_step", T0 + 0.5, {"secret": "s3"}))
        observer(ev("run_end", T0 + 1, {"status": "completed", "result": {"ok": True}}))
        (run,) = exporter.get_finished_spans()
        (custom,) = run.events
        assert custom.name == "custom_step"
        if capture:
            assert json.loads(attrs(run)["pyflue.run.payload"]) == {"email": "a@b.c"}
            assert json.loads(attrs(run)["pyflue.run.result"]) == {"ok": True}
            assert json.loads((custom.attributes or {})["pyflue.event.data"]) == {"secret": "s3"}
        else:
            assert "pyflue.run.payload" not in attrs(run)
            assert "pyflue.run.result" not in attrs(run)
            assert dict(custom.attributes or {}) == {}


def test_an_active_span_becomes_the_parent_of_the_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("POST /runs/triage", kind=trace.SpanKind.SERVER):
        observer(ev("run_start", T0, {"workflow": "triage", "payload": {}}))
        observer(ev("operation_start", T0 + 1, {"kind": "prompt"}, op="o"))
    # The run ends after the request span (a 202 answered early): the tree still holds.
    observer(ev("operation_end", T0 + 2, {"status": "completed"}, op="o"))
    observer(ev("run_end", T0 + 3, {"status": "completed"}))
    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        (
            "POST /runs/triage",
            "SERVER",
            [("invoke_workflow triage", "INTERNAL", [("invoke_agent agent", "INTERNAL", [])])],
        )
    ]


def test_logs_outside_runs_go_to_the_active_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events()
    with provider.get_tracer("app").start_as_current_span("job"):
        observer(ev("log", T0, {"level": "info", "message": "hello", "fields": {}}))
    observer(ev("log", T0, {"level": "info", "message": "nowhere", "fields": {}}))  # no span: dropped quietly
    (job,) = exporter.get_finished_spans()
    assert [dict(e.attributes or {})["log.message"] for e in job.events] == ["hello"]


def test_events_whose_start_was_never_seen_are_ignored(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """An observer attached mid-run sees ends without starts; it neither fails nor invents spans."""
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN)
    for event in [
        ev("tool_end", T0, {"tool": "x", "call_id": "c", "result": "r"}, op="o"),
        ev("model_end", T0, {"finish_reason": "stop"}, op="o"),
        ev("compaction_end", T0, {"reason": "manual"}, op="o"),
        ev("operation_end", T0, {"status": "completed"}, op="o"),
        ev("abort", T0, {"reason": "x"}, op="o"),
        ev("error", T0, {"error": {"type": "X", "message": "y"}}),
        ev("task_end", T0, {"agent": "a", "task_operation_id": "t"}, op="o"),
        ev("text_delta", T0, {"text": "hi"}, op="o"),
        ev("dispatch_accepted", T0, {"dispatch_id": "d", "attempt": 1}),
        ev("run_end", T0, {"status": "completed"}),
    ]:
        observer(event)
    assert exporter.get_finished_spans() == ()
    assert observer.open_spans == 0


def test_an_error_event_becomes_a_span_event(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(run_id=RUN)
    observer(ev("run_start", T0, {"workflow": "w", "payload": {}}))
    observer(ev("error", T0 + 1, {"error": {"type": "StoreError", "message": "disk full"}}))
    observer(ev("run_end", T0 + 2, {"status": "completed"}))
    (run,) = exporter.get_finished_spans()
    assert [(e.name, dict(e.attributes or {})) for e in run.events] == [
        ("pyflue.error", {"error.type": "StoreError", "exception.message": "disk full"})
    ]


def test_a_task_is_named_after_its_profile_and_found_under_the_calling_tool(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """tasks.py emits task_start without a call_id, from inside the tool; the child operation's
    envelope names the parent's agent (the instance that runs it), the profile is in task_start."""
    import contextvars

    observer = create_opentelemetry_observer(tracer_provider=provider)
    ev = Events(agent="lead")
    operation, tool_task, other_task = (contextvars.copy_context() for _ in range(3))
    operation.run(observer, ev("operation_start", T0, {"kind": "prompt"}, op="p"))
    operation.run(observer, ev("operation_start", T0, {"kind": "prompt"}, op="q", session="s9"))
    # In the tool's own task, where its span is current:
    tool_task.run(observer, ev("tool_start", T0 + 1, {"tool": "task", "call_id": "c1"}, op="p"))
    tool_task.run(
        observer, ev("task_start", T0 + 2, {"agent": "researcher", "task_operation_id": "t1"}, op="p")
    )
    tool_task.run(
        observer, ev("operation_start", T0 + 3, {"kind": "task"}, op="t1", parent="p", session="task:t1")
    )
    tool_task.run(
        observer, ev("operation_end", T0 + 4, {"status": "completed"}, op="t1", parent="p", session="task:t1")
    )
    # A task of operation q started while p's tool span is current must not hang under p's tool.
    other_task.run(observer, ev("tool_start", T0 + 1, {"tool": "task", "call_id": "c2"}, op="p"))
    other_task.run(observer, ev("task_start", T0 + 2, {"agent": "writer", "task_operation_id": "t2"}, op="q"))
    other_task.run(
        observer, ev("operation_start", T0 + 3, {"kind": "task"}, op="t2", parent="q", session="task:t2")
    )
    other_task.run(
        observer, ev("operation_end", T0 + 4, {"status": "completed"}, op="t2", parent="q", session="task:t2")
    )
    for context_, event in [
        (tool_task, ev("tool_end", T0 + 5, {"tool": "task", "call_id": "c1", "result": "r"}, op="p")),
        (other_task, ev("tool_end", T0 + 5, {"tool": "task", "call_id": "c2", "result": "r"}, op="p")),
        (operation, ev("operation_end", T0 + 6, {"status": "completed"}, op="p")),
        (operation, ev("operation_end", T0 + 6, {"status": "completed"}, op="q", session="s9")),
    ]:
        context_.run(observer, event)

    spans = exporter.get_finished_spans()
    assert observer.open_spans == 0
    researcher, writer = one(spans, "invoke_agent researcher"), one(spans, "invoke_agent writer")
    assert attrs(researcher)["gen_ai.agent.name"] == "researcher"
    tool_c1 = next(s for s in spans if attrs(s).get("gen_ai.tool.call.id") == "c1")
    assert parent_of(researcher, spans) is tool_c1
    q = next(s for s in spans if attrs(s).get("pyflue.operation_id") == "q")
    assert parent_of(writer, spans) is q
