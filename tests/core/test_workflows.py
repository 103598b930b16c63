"""Workflow runs: FlueContext, the lifecycle and its statuses, payloads, results, cancellation."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from pyflue import Event, Project, cancel_run, define_tool, get_run, init, invoke_workflow, list_runs
from pyflue.errors import ConfigError, PayloadValidationError, UnknownAgentError
from pyflue.models.base import Usage
from pyflue.stores.memory import MemoryRunStore
from pyflue.stores.runs import RunRecord
from tests.core._workflow_helpers import (
    SEED,
    STUCK,
    TICKING,
    write_project,
)
from tests.models import anthropic_fixtures as fx
from tests.wire import WireServer

HELPER_AGENT = "from pyflue import create_agent\ndefault = create_agent(lambda ctx: {'model': 'test'})\n"


def project_with(tmp_path: Path, **workflows: str) -> Project:
    files = {f"workflows/{name}.py": source for name, source in workflows.items()}
    return Project.load(write_project(tmp_path, {"agents/helper.py": HELPER_AGENT, **files}))


def assert_complete_log(events: Sequence[Event], run_id: str) -> None:
    """Contiguous seqs from 1, run_start first, run_end last, every event of this run."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_start" and events[-1].type == "run_end"
    assert all(e.run_id == run_id for e in events)
    assert [e.type for e in events].count("run_end") == 1


def usage_of(events: Sequence[Event]) -> Usage:
    total = Usage()
    for event in events:
        if event.type == "model_end":
            total = total + Usage(**event.data["usage"])
    return total


# -- the seed workflow ---------------------------------------------------------------------------


async def test_the_seed_workflow_runs_verbatim_on_the_test_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYFLUE_MODEL", "test")
    project = project_with(tmp_path, summarize=SEED)
    seen: list[Event] = []

    payload = {"text": "PyFlue runs agents."}
    record = await invoke_workflow(project, "summarize", payload, on_event=seen.append)

    assert record.status == "completed", record.error
    assert record.result == {"summary": "success (no tool calls)"}
    assert record.run_id.startswith("workflow:summarize:")
    assert record.payload == {"text": "PyFlue runs agents."}
    assert record.error is None and record.ended_at is not None and record.duration_ms is not None
    assert record.owner_pid == os.getpid()
    # what the store keeps is what observers saw live, all of it
    assert await project.run_store.get_run(record.run_id) == record
    stored = await project.run_store.read_events(record.run_id)
    assert stored == seen
    assert_complete_log(stored, record.run_id)
    types = [e.type for e in stored]
    assert types[:3] == ["run_start", "log", "operation_start"]
    assert {"model_start", "text_delta", "model_end", "operation_end"} <= set(types)
    assert stored[0].data == {"workflow": "summarize", "payload": {"text": "PyFlue runs agents."}}
    assert stored[1].data == {"level": "info", "message": "started", "fields": {}}
    end = stored[-1].data
    assert end["status"] == "completed" and end["result"] == record.result
    assert end["usage"] == record.usage.to_dict() == usage_of(stored).to_dict()
    assert record.usage.requests == 1 and record.usage.input_tokens > 0
    # the agent instance is the run's own (id = run id), named as defined
    operation = next(e for e in stored if e.type == "operation_start")
    assert operation.instance_id == record.run_id
    assert operation.data["input"] == "Summarize: PyFlue runs agents."


async def test_the_seed_workflow_runs_verbatim_against_the_anthropic_wire(
    tmp_path: Path, wire: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", wire.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    wire.sse(fx.stream_events(fx.message([fx.text("PyFlue is a small agent library.")])))
    project = project_with(tmp_path, summarize=SEED)

    record = await project.run("summarize", {"text": "PyFlue is ..."})

    assert record.status == "completed", record.error
    assert record.result == {"summary": "PyFlue is a small agent library."}
    assert record.usage == Usage(input_tokens=25, output_tokens=15, requests=1)
    (request,) = wire.requests
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == "k"
    body = request.json()
    assert body["model"] == "claude-haiku-4-5" and body["stream"] is True
    assert "Summarize: PyFlue is ..." in str(body["messages"])
    events = await project.run_store.read_events(record.run_id)
    assert_complete_log(events, record.run_id)
    model_end = next(e for e in events if e.type == "model_end")
    assert model_end.data["response_model"] == fx.MODEL
    deltas = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert deltas == "PyFlue is a small agent library."


async def test_env_replaces_os_environ_for_the_runs_agents(tmp_path: Path) -> None:
    project = project_with(tmp_path, summarize=SEED)
    assert "PYFLUE_MODEL" not in os.environ
    record = await project.run("summarize", {"text": "x"}, env={"PYFLUE_MODEL": "test"})
    assert record.status == "completed" and record.result == {"summary": "success (no tool calls)"}


# -- payloads ------------------------------------------------------------------------------------

TYPED = """\
from pydantic import BaseModel

class Payload(BaseModel):
    name: str
    times: int = 2

async def run(ctx):
    return {"payload": ctx.payload, "typed": type(ctx.input).__name__, "times": ctx.input.times}
"""


async def test_a_payload_model_validates_and_fills_defaults(tmp_path: Path) -> None:
    project = project_with(tmp_path, typed=TYPED)
    record = await project.run("typed", {"name": "Ada"})
    assert record.status == "completed"
    assert record.result == {"payload": {"name": "Ada", "times": 2}, "typed": "Payload", "times": 2}
    assert record.payload == {"name": "Ada", "times": 2}  # the record keeps what the run saw


async def test_an_invalid_payload_raises_and_creates_no_run(tmp_path: Path) -> None:
    project = project_with(tmp_path, typed=TYPED, free="async def run(ctx):\n    return ctx.payload\n")
    with pytest.raises(PayloadValidationError, match=r"workflow 'typed' is invalid: name: Field required"):
        await project.run("typed", {"times": 3})
    with pytest.raises(PayloadValidationError, match=r"times: Input should be a valid integer"):
        await project.run("typed", {"name": "x", "times": "many"})
    with pytest.raises(PayloadValidationError, match="not JSON data"):
        await project.run("free", {"when": object()})
    assert not project.db_path.exists()  # nothing was recorded, not even the database
    assert (await list_runs(project=project)).runs == []


async def test_unknown_workflows_raise_listing_the_available_ones(tmp_path: Path) -> None:
    project = project_with(tmp_path, alpha="async def run(ctx): ...\n")
    with pytest.raises(UnknownAgentError, match="available: alpha"):
        await invoke_workflow(project, "beta", {})


# -- statuses ------------------------------------------------------------------------------------

FAILS = """\
from pyflue import create_agent
agent = create_agent(lambda ctx: {"model": "test"})

async def run(ctx):
    ctx.log.warning("about to fail", step=1)
    session = await (await ctx.init(agent)).session()
    await session.prompt("hi")
    raise ValueError("the data is wrong")
"""


async def test_a_workflow_that_raises_fails_with_its_error_and_a_complete_log(tmp_path: Path) -> None:
    project = project_with(tmp_path, fails=FAILS)
    record = await project.run("fails", {})

    assert record.status == "failed"
    assert record.error is not None
    traceback = record.error.pop("traceback")
    assert record.error == {"type": "ValueError", "message": "the data is wrong"}
    # The traceback is kept: the workflow's own frame and the exception line.
    assert 'workflows/fails.py", line' in traceback and "in run" in traceback
    assert traceback.rstrip().endswith("ValueError: the data is wrong")
    record.error["traceback"] = traceback
    assert record.result is None and record.usage.requests == 1
    events = await project.run_store.read_events(record.run_id)
    assert_complete_log(events, record.run_id)
    assert [e.type for e in events if e.type not in ("text_delta", "model_start", "model_end")] == [
        "run_start",
        "log",
        "operation_start",
        "operation_end",
        "run_end",
    ]
    assert events[1].data == {"level": "warning", "message": "about to fail", "fields": {"step": 1}}
    assert events[-1].data["error"] == record.error and events[-1].data["status"] == "failed"
    assert "result" not in events[-1].data


async def test_a_result_that_is_not_json_fails_the_run(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        opaque="async def run(ctx):\n    return {'handle': object()}\n",
        model="""\
            from pydantic import BaseModel
            class Out(BaseModel):
                n: int
            async def run(ctx):
                return Out(n=3)
        """,
    )
    record = await project.run("opaque", {})
    assert record.status == "failed"
    assert record.error is not None and record.error["type"] == "ResultNotSerializableError"
    assert "return a dict of plain values" in record.error["message"]
    assert (await project.run_store.read_events(record.run_id))[-1].data["status"] == "failed"
    # what pydantic can serialise is a result, stored in its JSON form
    assert (await project.run("model", {})).result == {"n": 3}


async def test_the_record_exists_as_running_before_the_workflow_code_runs(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        peek="""\
            async def run(ctx):
                record = await ctx.project.run_store.get_run(ctx.run_id)
                return {"status": record.status, "workflow": record.workflow}
        """,
    )
    record = await project.run("peek", {})
    assert record.result == {"status": "running", "workflow": "peek"}


async def test_usage_adds_up_every_model_call_of_the_run(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        chatty="""\
            async def run(ctx):
                first = await (await ctx.init("helper")).session()
                second = await (await ctx.init("helper", id="other")).session("side")
                a = await first.prompt("one")
                b = await second.prompt("two words")
                c = await first.prompt("three")
                return {"requests": a.usage.requests + b.usage.requests + c.usage.requests}
        """,
    )
    record = await project.run("chatty", {})
    events = await project.run_store.read_events(record.run_id)
    assert record.result == {"requests": 3}
    assert record.usage.requests == 3
    assert record.usage == usage_of(events)
    assert record.usage.input_tokens > 150  # three calls of 50+ each


async def test_ctx_init_by_name_with_fresh_instances_per_run_unless_an_id_is_given(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        memory="""\
            async def run(ctx):
                fresh = await (await ctx.init("helper")).session()
                await fresh.prompt("hello")
                kept = await (await ctx.init("helper", id="user-1")).session()
                await kept.prompt("hello")
                return {"fresh": len(fresh.history), "kept": len(kept.history), "id": fresh.harness.id}
        """,
    )
    first = await project.run("memory", {})
    second = await project.run("memory", {})
    assert first.result == {"fresh": 2, "kept": 2, "id": first.run_id}
    assert second.result == {"fresh": 2, "kept": 4, "id": second.run_id}


async def test_custom_events_and_the_built_in_types_they_may_not_reuse(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        emits="""\
            from pyflue.errors import ConfigError
            async def run(ctx):
                ctx.emit("progress", {"done": 1, "of": 2})
                refused = []
                for kind in ("run_end", "log", "tool_start", ""):
                    try:
                        ctx.emit(kind, {})
                    except ConfigError as exc:
                        refused.append(str(exc))
                return {"refused": len(refused)}
        """,
    )
    record = await project.run("emits", {})
    assert record.result == {"refused": 4}
    events = await project.run_store.read_events(record.run_id)
    assert [e.type for e in events] == ["run_start", "progress", "run_end"]
    assert events[1].data == {"done": 1, "of": 2}


async def test_an_async_observer_gets_every_event_including_run_end(tmp_path: Path) -> None:
    project = project_with(tmp_path, ticking=TICKING)
    seen: list[Event] = []

    async def observe(event: Event) -> None:
        await anyio.sleep(0.0001)
        seen.append(event)

    record = await project.run("ticking", {"rounds": 2}, on_event=observe)
    assert record.status == "completed"
    assert seen == await project.run_store.read_events(record.run_id)
    assert {"tool_start", "tool_end"} <= {e.type for e in seen}


async def test_events_are_written_in_batches_and_none_is_lost(tmp_path: Path) -> None:
    class CountingStore(MemoryRunStore):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[int] = []

        async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
            self.batches.append(len(events))
            await super().append_events(run_id, events)

    project = project_with(
        tmp_path,
        burst="""\
            import anyio
            async def run(ctx):
                for i in range(3000):
                    ctx.emit("tick", {"i": i})
                    if i % 100 == 0:
                        await anyio.sleep(0.001)
                return {"ok": True}
        """,
    )
    store = CountingStore()
    record = await project.run("burst", {}, run_store=store)
    events = await store.read_events(record.run_id)
    assert len(events) == 3002
    assert_complete_log(events, record.run_id)
    assert [e.data["i"] for e in events[1:-1]] == list(range(3000))
    assert 1 <= len(store.batches) < 100  # batched, not one write per event
    assert not project.db_path.exists()  # with a memory run store and no agent, no file is made


async def test_a_run_id_can_be_chosen_but_not_reused(tmp_path: Path) -> None:
    project = project_with(tmp_path, ok="async def run(ctx):\n    return ctx.run_id\n")
    record = await project.run("ok", {}, run_id="nightly-2024-01-01")
    assert record.result == "nightly-2024-01-01"
    with pytest.raises(ConfigError, match="already exists"):
        await project.run("ok", {}, run_id="nightly-2024-01-01")
    assert (await get_run("nightly-2024-01-01", project=project)).status == "completed"


# -- cancellation --------------------------------------------------------------------------------


async def test_cancel_run_in_process_reaches_a_tool_and_ends_the_run_cancelled(tmp_path: Path) -> None:
    project = project_with(tmp_path, stuck=STUCK)
    tool_started = anyio.Event()

    def watch(event: Event) -> None:
        if event.type == "tool_start":
            tool_started.set()

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        # a long poll interval: in the same process cancel_run reaches the run at once
        invoke = functools.partial(
            invoke_workflow, project, "stuck", {}, on_event=watch, cancel_poll_interval=60
        )
        run_id = await tg.start(invoke)
        assert (await get_run(run_id, project=project)).status == "running"  # recorded before it runs
        await tool_started.wait()
        assert await cancel_run(run_id, project=project, reason="user pressed stop") is True
    assert time.monotonic() - started < 5

    record = await get_run(run_id, project=project)
    assert record.status == "cancelled"
    assert record.error == {
        "type": "RunCancelledError",
        "message": "user pressed stop",
        "reason": "cancel_requested",
    }
    events = await project.run_store.read_events(run_id)
    assert_complete_log(events, run_id)
    types = [e.type for e in events]
    assert "tool_start" in types
    assert not any(e.type == "tool_end" and "result" in e.data for e in events)  # the tool never finished
    operation_end = next(e for e in events if e.type == "operation_end")
    assert operation_end.data["status"] == "cancelled"
    assert events[-1].data["status"] == "cancelled"
    assert await cancel_run(run_id, project=project) is False  # no longer running


async def test_a_cancel_request_in_the_store_reaches_a_model_call(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        slow_model="""\
            import anyio
            from pyflue import create_agent
            from pyflue.models.testing import FunctionModel

            async def stream(request):
                yield "thinking"
                await anyio.sleep(3600)
                yield "never"

            agent = create_agent(lambda ctx: {"model": FunctionModel(stream_function=stream)})

            async def run(ctx):
                session = await (await ctx.init(agent)).session()
                return (await session.prompt("hi")).text
        """,
    )
    store = MemoryRunStore()
    delta = anyio.Event()

    def watch(event: Event) -> None:
        if event.type == "text_delta":
            delta.set()

    async with anyio.create_task_group() as tg:
        invoke = functools.partial(
            invoke_workflow,
            project,
            "slow_model",
            {},
            run_store=store,
            on_event=watch,
            cancel_poll_interval=0.02,
        )
        run_id = await tg.start(invoke)
        await delta.wait()
        # as another process would: only the store knows about the request
        assert await store.request_cancel(run_id, "from elsewhere") is True
    record = await store.get_run(run_id)
    assert record is not None and record.status == "cancelled"
    assert record.error is not None and record.error["message"] == "from elsewhere"
    events = await store.read_events(run_id)
    model_end = next(e for e in events if e.type == "model_end")
    assert "error" in model_end.data  # the model call itself was cancelled


async def test_a_workflow_timeout_ends_the_run_cancelled_with_a_clear_reason(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        sleepy="import anyio\ntimeout = 0.2\nasync def run(ctx):\n    await anyio.sleep(30)\n",
        plain="import anyio\nasync def run(ctx):\n    await anyio.sleep(30)\n",
    )
    started = time.monotonic()
    record = await project.run("sleepy", {})
    assert record.status == "cancelled"
    assert record.error is not None and record.error["reason"] == "timeout"
    assert record.error["message"] == "the run timed out after 0.2 s (the workflow's timeout)"
    overridden = await project.run("plain", {}, timeout=0.1)
    assert overridden.status == "cancelled" and "0.1 s" in (overridden.error or {})["message"]
    assert time.monotonic() - started < 5


async def test_ctx_cancel_ends_the_run_cancelled(tmp_path: Path) -> None:
    project = project_with(
        tmp_path,
        quits="""\
            import anyio
            async def run(ctx):
                ctx.cancel("nothing to do")
                await anyio.sleep(30)
                return "unreachable"
        """,
    )
    record = await project.run("quits", {})
    assert record.status == "cancelled" and record.result is None
    assert record.error == {"type": "RunCancelledError", "message": "nothing to do", "reason": "cancelled"}


async def test_a_cancelled_caller_records_the_run_cancelled_and_the_cancellation_propagates(
    tmp_path: Path,
) -> None:
    project = project_with(tmp_path, stuck=STUCK)
    reached_end = False
    with anyio.move_on_after(0.5) as scope:
        await invoke_workflow(project, "stuck", {}, run_id="abandoned")
        reached_end = True
    assert scope.cancelled_caught and not reached_end
    record = await get_run("abandoned", project=project)
    assert record.status == "cancelled"
    assert record.error is not None and record.error["reason"] == "caller_cancelled"
    events = await project.run_store.read_events("abandoned")
    assert_complete_log(events, "abandoned")


async def test_a_memory_run_store_keeps_the_run_out_of_the_project_database(tmp_path: Path) -> None:
    project = project_with(tmp_path, ok="async def run(ctx):\n    return 1\n")
    store = MemoryRunStore()
    record = await project.run("ok", None, run_store=store)
    assert isinstance(record, RunRecord) and record.result == 1 and record.payload == {}
    assert await store.get_run(record.run_id) == record
    assert (await list_runs(project=project)).runs == []


async def test_an_async_observer_of_a_run_started_inside_an_agent_operation_gets_its_events(
    tmp_path: Path,
) -> None:
    project = project_with(tmp_path, inner="async def run(ctx):\n    ctx.log.info('inner')\n    return 1\n")
    seen: list[str] = []

    async def observe_run(event: Event) -> None:
        seen.append(event.type)

    async def observe_agent(event: Event) -> None:  # makes the outer operation pump its observers
        pass

    @define_tool
    async def start_inner() -> str:
        """Runs the inner workflow."""
        return (await invoke_workflow(project, "inner", {}, on_event=observe_run)).status

    harness = await init(model="test", tools=[start_inner], on_event=observe_agent)
    result = await (await harness.session()).prompt("go")
    assert result.text.endswith("start_inner: completed")
    assert seen == ["run_start", "log", "run_end"]


def test_a_long_traceback_keeps_its_innermost_frames() -> None:
    from pyflue.errors import bounded_traceback

    def fail(n: int) -> None:
        if n == 0:
            raise KeyError("the first cause")
        try:
            fail(n - 1)
        except Exception as exc:
            raise ValueError(f"failure {n}") if n < 60 else RuntimeError("at the bottom") from exc

    try:
        fail(60)
    except RuntimeError as exc:
        text = bounded_traceback(exc, limit=2_000)
    assert len(text) <= 2_000 + 40
    assert text.startswith("[... ") and text.rstrip().endswith("RuntimeError: at the bottom")


CYCLIC_RESULT = """\
async def run(ctx):
    loop = {}
    loop["self"] = loop
    return {"bad": loop} if ctx.payload.get("kind") == "cycle" else {"bad": b"\\xff\\xfe"}
"""


@pytest.mark.parametrize("kind", ["cycle", "bytes"])
async def test_a_result_json_cannot_hold_fails_the_run_with_a_typed_error(tmp_path: Path, kind: str) -> None:
    project = project_with(tmp_path, cyclic=CYCLIC_RESULT)
    record = await project.run("cyclic", {"kind": kind})
    assert record.status == "failed"
    assert record.error is not None and record.error["type"] == "ResultNotSerializableError"


@pytest.mark.parametrize(
    "payload", [{"a": float("nan")}, {"a": float("inf")}, {"b": b"\xff"}, {"loop": []}], ids=str
)
async def test_a_payload_json_cannot_hold_is_refused_before_a_run_exists(
    tmp_path: Path, payload: dict
) -> None:
    if "loop" in payload:
        payload["loop"].append(payload)
    project = project_with(tmp_path, cyclic=CYCLIC_RESULT)
    with pytest.raises(PayloadValidationError, match="not JSON data"):
        await project.run("cyclic", payload)
    assert len(await project.run_store.list_runs()) == 0
