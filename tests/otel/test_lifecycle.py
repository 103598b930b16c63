"""Every span ends: on abort, cancellation, shutdown and process exit; and import hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue import define_tool, init
from pyflue.errors import AbortedError
from pyflue.models.testing import TestModel
from pyflue.observability import create_opentelemetry_observer
from tests.otel.spans import FRESH, attrs, is_error, one, parent_of, tree

ROOT = Path(__file__).resolve().parents[2]


def _hanging_tool(started: anyio.Event) -> object:
    @define_tool
    async def hang(x: int) -> str:
        """Never returns."""
        started.set()
        await anyio.sleep_forever()
        return "unreachable"

    return hang


async def test_abort_mid_tool_ends_the_tool_and_the_operation_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    started = anyio.Event()
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[_hanging_tool(started)], **FRESH())
    session = await agent.session()
    outcome: list[BaseException] = []

    async def run() -> None:
        try:
            await session.prompt("hang")
        except AbortedError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        assert observer.open_spans == 2  # the operation and the running tool
        assert await session.abort("user pressed stop")

    assert len(outcome) == 1
    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        (
            "invoke_agent agent",
            "INTERNAL",
            [("chat test", "CLIENT", []), ("execute_tool hang", "INTERNAL", [])],
        )
    ]
    operation = one(spans, "invoke_agent agent")
    assert is_error(operation)
    assert attrs(operation)["pyflue.operation.status"] == "aborted"
    assert attrs(operation)["error.type"] == "AbortedError"
    assert attrs(operation)["pyflue.abort.reason"] == "user pressed stop"
    assert [e.name for e in operation.events] == ["pyflue.abort"]
    tool = one(spans, "execute_tool hang")
    assert is_error(tool)
    # Its tool_end carries the backend's cancellation (CancelledError / Cancelled): one value for both.
    assert attrs(tool)["error.type"] == "cancelled"
    assert tool.end_time <= operation.end_time  # type: ignore[operator]
    assert observer.open_spans == 0


async def test_cancelling_the_caller_mid_tool_ends_every_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    started = anyio.Event()
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[_hanging_tool(started)], **FRESH())
    session = await agent.session()

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await session.prompt("hang")

        tg.start_soon(run)
        await started.wait()
        tg.cancel_scope.cancel()

    spans = exporter.get_finished_spans()
    operation = one(spans, "invoke_agent agent")
    assert is_error(operation)
    assert attrs(operation)["pyflue.operation.status"] == "cancelled"
    assert attrs(operation)["error.type"] == "cancelled"  # the same on asyncio and trio
    tool = one(spans, "execute_tool hang")
    assert is_error(tool)
    assert parent_of(tool, spans) is operation
    assert observer.open_spans == 0


async def test_cancelling_mid_model_call_ends_the_chat_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from pyflue.models.base import ModelRequest, ModelResponse
    from pyflue.models.testing import FunctionModel

    started = anyio.Event()

    async def slow(request: ModelRequest) -> ModelResponse:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=FunctionModel(slow), **FRESH())
    session = await agent.session()
    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.prompt, "think")
            await started.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught

    spans = exporter.get_finished_spans()
    chat = one(spans, "chat function")
    assert is_error(chat)
    assert attrs(chat)["error.type"] == "cancelled"
    assert observer.open_spans == 0


async def test_shutdown_ends_open_spans_as_interrupted_and_stops_tracing(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    started = anyio.Event()
    observer = create_opentelemetry_observer(tracer_provider=provider)
    agent = await init(on_event=observer, model=TestModel(), tools=[_hanging_tool(started)], **FRESH())
    session = await agent.session()

    async with anyio.create_task_group() as tg:
        tg.start_soon(session.prompt, "hang")
        await started.wait()
        observer.shutdown()
        assert observer.open_spans == 0
        names = {s.name: s for s in exporter.get_finished_spans()}
        assert set(names) == {"invoke_agent agent", "chat test", "execute_tool hang"}
        for name in ("invoke_agent agent", "execute_tool hang"):
            assert is_error(names[name])
            assert attrs(names[name])["error.type"] == "interrupted"
        assert attrs(names["invoke_agent agent"])["pyflue.operation.status"] == "interrupted"
        observer.shutdown()  # idempotent
        tg.cancel_scope.cancel()

    # Events after shutdown (the cancelled operation's end) start or end nothing more.
    assert len(exporter.get_finished_spans()) == 3


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYFLUE_MODEL", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def test_spans_open_when_the_process_exits_are_ended_as_interrupted() -> None:
    proc = _run(
        """
        import json, threading
        import anyio
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
        from pyflue import define_tool, init
        from pyflue.models.testing import TestModel
        from pyflue.observability import create_opentelemetry_observer

        class Printer(SpanExporter):
            def export(self, spans):
                for s in spans:
                    print(json.dumps({"name": s.name, "status": s.status.status_code.name,
                                      "error": (s.attributes or {}).get("error.type")}), flush=True)
                return SpanExportResult.SUCCESS

        provider = TracerProvider()  # shuts itself down at exit: the observer's hook must run first
        provider.add_span_processor(SimpleSpanProcessor(Printer()))
        observer = create_opentelemetry_observer(tracer_provider=provider)
        started = threading.Event()

        @define_tool
        async def hang(x: int) -> str:
            '''Never returns.'''
            started.set()
            await anyio.sleep_forever()

        async def main():
            agent = await init(on_event=observer, model=TestModel(), tools=[hang])
            await (await agent.session()).prompt("hang")

        threading.Thread(target=anyio.run, args=(main,), daemon=True).start()
        assert started.wait(30)
        print("exiting", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == json.dumps({"name": "chat test", "status": "UNSET", "error": None})
    assert lines[1] == "exiting"
    ended = sorted(json.loads(line)["name"] for line in lines[2:])
    assert ended == ["execute_tool hang", "invoke_agent agent"]
    for line in lines[2:]:
        assert json.loads(line)["status"] == "ERROR"
        assert json.loads(line)["error"] == "interrupted"


def test_import_pyflue_does_not_import_opentelemetry() -> None:
    proc = _run(
        """
        import sys
        import anyio
        import pyflue
        import pyflue.observability
        from pyflue import init
        from pyflue.models.testing import TestModel

        async def main():
            agent = await init(on_event=lambda event: None, model=TestModel())
            await (await agent.session()).prompt("hi")

        anyio.run(main)
        loaded = sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry."))
        print(loaded)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_otel_extra_needs_only_the_api() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [r.split(">")[0].split("=")[0] for r in project["optional-dependencies"]["otel"]] == [
        "opentelemetry-api"
    ]
    sources = sorted((ROOT / "pyflue" / "observability").glob("*.py"))
    assert sources, "the observer's package moved: update this test"
    for path in sources:
        assert "opentelemetry.sdk" not in path.read_text(), path.name


@pytest.mark.parametrize("capture", [False, True])
def test_the_observer_is_a_plain_sync_callable(capture: bool) -> None:
    """The bus calls sync observers inline (in the emitting task, so the OTel context is right)."""
    import inspect

    observer = create_opentelemetry_observer(capture_content=capture)
    assert callable(observer)
    assert not inspect.iscoroutinefunction(observer.__call__)
    observer.shutdown()
