"""End to end: a workflow run with a log line, an agent with a tool and a subagent task (both
delegated by the model and called directly), through invoke_workflow, gives one trace."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import Project, invoke_workflow, observe, unobserve
from pyflue.events import Event
from pyflue.observability import create_opentelemetry_observer
from pyflue.stores.memory import MemoryRunStore, MemorySessionStore
from tests.otel.spans import Tree, attrs, is_error, named, one, one_trace, parent_of, tree, unordered

AGENT = '''
"""Triages tickets."""

import anyio

from pyflue import create_agent, define_agent_profile, define_tool


@define_tool
def lookup(ticket: int) -> str:
    """Look a ticket up."""
    return f"ticket {ticket}: printer on fire"


@define_tool
async def wait_forever(seconds: int) -> str:
    """Never returns (for the timeout test)."""
    await anyio.sleep_forever()
    return "unreachable"


researcher = define_agent_profile(name="researcher", description="Digs into a ticket.", tools=[lookup])

default = create_agent(
    lambda ctx: {
        "model": "test",
        "tools": [lookup] if ctx.id != "stuck" else [wait_forever],
        "subagents": [researcher] if ctx.id != "stuck" else [],
    }
)
'''

TRIAGE = '''
"""Triage one ticket."""

from pyflue import FlueContext
from ..agents.triager import default as triager


async def run(ctx: FlueContext) -> dict:
    ctx.log.info("triaging", ticket=ctx.payload["ticket"])
    harness = await ctx.init(triager, id="desk")
    session = await harness.session()
    first = await session.prompt("Triage this ticket.")
    notes = await session.task("Dig deeper.", agent="researcher")
    ctx.emit("triaged", {"label": "hardware"})
    return {"answer": first.text, "notes": notes.text}
'''

STUCK = '''
"""Never finishes: its tool hangs until the run's timeout."""

from pyflue import FlueContext
from ..agents.triager import default as triager

timeout = 0.5


async def run(ctx: FlueContext) -> dict:
    harness = await ctx.init(triager, id="stuck")
    await (await harness.session()).prompt("Wait.")
    return {}
'''


EXPECTED_TRIAGE: Tree = [
    (
        "invoke_workflow triage",
        "INTERNAL",
        [
            (
                "invoke_agent triager",
                "INTERNAL",
                [
                    ("chat test", "CLIENT", []),
                    ("execute_tool lookup", "INTERNAL", []),
                    (
                        "execute_tool task",
                        "INTERNAL",
                        [
                            (
                                "invoke_agent researcher",
                                "INTERNAL",
                                [
                                    ("chat test", "CLIENT", []),
                                    ("execute_tool lookup", "INTERNAL", []),
                                    ("chat test", "CLIENT", []),
                                ],
                            )
                        ],
                    ),
                    ("chat test", "CLIENT", []),
                ],
            ),
            # session.task() called by the workflow: an operation of kind "task" on the
            # triager's session, running the researcher.
            (
                "invoke_agent triager",
                "INTERNAL",
                [
                    (
                        "invoke_agent researcher",
                        "INTERNAL",
                        [
                            ("chat test", "CLIENT", []),
                            ("execute_tool lookup", "INTERNAL", []),
                            ("chat test", "CLIENT", []),
                        ],
                    )
                ],
            ),
        ],
    )
]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "agents").mkdir()
    (tmp_path / "workflows").mkdir()
    (tmp_path / "agents" / "triager.py").write_text(textwrap.dedent(AGENT))
    (tmp_path / "workflows" / "triage.py").write_text(textwrap.dedent(TRIAGE))
    (tmp_path / "workflows" / "stuck.py").write_text(textwrap.dedent(STUCK))
    loaded = Project.load(tmp_path)
    assert loaded.errors == {}
    return loaded


def stores() -> dict[str, object]:
    return {"run_store": MemoryRunStore(), "session_store": MemorySessionStore()}


async def test_a_workflow_with_a_tool_and_subagent_tasks_is_one_tree(
    project: Project, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[Event] = []
    observer = create_opentelemetry_observer(tracer_provider=provider)

    def both(event: Event) -> None:
        seen.append(event)
        observer(event)

    record = await invoke_workflow(project, "triage", {"ticket": 42}, on_event=both, **stores())  # type: ignore[arg-type]
    assert record.status == "completed", record.error

    spans = exporter.get_finished_spans()
    assert observer.open_spans == 0
    assert one_trace(spans)
    assert unordered(tree(spans)) == unordered(EXPECTED_TRIAGE)
    # In time order, the model's two calls bracket the operation's concurrent tool calls.
    prompt_children = [name for name, _, _ in tree(spans)[0][2][0][2]]
    assert prompt_children[0] == prompt_children[-1] == "chat test"
    assert sorted(prompt_children[1:3]) == ["execute_tool lookup", "execute_tool task"]

    run = one(spans, "invoke_workflow triage")
    assert attrs(run) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "triage",
        "pyflue.run_id": record.run_id,
        "pyflue.run.status": "completed",
    }
    assert [(e.name, dict(e.attributes or {})) for e in run.events] == [
        ("log", {"log.level": "info", "log.message": "triaging", "pyflue.log.ticket": 42}),
        ("triaged", {}),
    ]
    prompt_op, direct_task = named(spans, "invoke_agent triager")
    assert attrs(prompt_op)["pyflue.operation.kind"] == "prompt"
    assert attrs(prompt_op)["gen_ai.agent.id"] == "desk"
    assert attrs(prompt_op)["pyflue.run_id"] == record.run_id
    assert attrs(direct_task)["pyflue.operation.kind"] == "task"
    delegated, direct = named(spans, "invoke_agent researcher")
    # Each task's child operation is its own conversation, linked to the operation that started it.
    for child, parent_op in ((delegated, prompt_op), (direct, direct_task)):
        assert attrs(child)["pyflue.parent_operation_id"] == attrs(parent_op)["pyflue.operation_id"]
        assert attrs(child)["gen_ai.conversation.id"].startswith("task:")
        assert attrs(child)["gen_ai.agent.id"] == "desk"
    # The span count is the event stream's: one span per *_start event of the run.
    starts = [e for e in seen if e.type in ("run_start", "operation_start", "model_start", "tool_start")]
    assert len(spans) == len(starts)
    assert {e.run_id for e in seen} == {record.run_id}


async def test_a_run_cancelled_by_its_timeout_ends_every_span(
    project: Project, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider)
    record = await invoke_workflow(project, "stuck", {}, on_event=observer, **stores())  # type: ignore[arg-type]
    assert record.status == "cancelled"

    spans = exporter.get_finished_spans()
    assert observer.open_spans == 0
    assert tree(spans) == [
        (
            "invoke_workflow stuck",
            "INTERNAL",
            [
                (
                    "invoke_agent triager",
                    "INTERNAL",
                    [("chat test", "CLIENT", []), ("execute_tool wait_forever", "INTERNAL", [])],
                )
            ],
        )
    ]
    for name in ("invoke_workflow stuck", "invoke_agent triager", "execute_tool wait_forever"):
        span = one(spans, name)
        assert is_error(span), name
        assert attrs(span)["error.type"] == "cancelled", name
    assert attrs(one(spans, "invoke_workflow stuck"))["pyflue.run.status"] == "cancelled"
    assert attrs(one(spans, "invoke_agent triager"))["pyflue.operation.status"] == "cancelled"


async def test_observe_traces_runs_under_the_callers_span_with_content(
    project: Project, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider, capture_content=True)
    observe(observer)
    try:
        with provider.get_tracer("app").start_as_current_span(
            "POST /runs/triage", kind=trace.SpanKind.SERVER
        ):
            record = await invoke_workflow(project, "triage", {"ticket": 7}, **stores())  # type: ignore[arg-type]
    finally:
        unobserve(observer)
    spans = exporter.get_finished_spans()
    run = one(spans, "invoke_workflow triage")
    assert parent_of(run, spans) is one(spans, "POST /runs/triage")
    assert one_trace(spans)
    assert json.loads(attrs(run)["pyflue.run.payload"]) == {"ticket": 7}
    assert json.loads(attrs(run)["pyflue.run.result"]) == record.result
    assert json.loads(dict(run.events[1].attributes or {})["pyflue.event.data"]) == {"label": "hardware"}
