"""What an observer owns: its exit hook and its open spans, and nothing the process keeps after it; and
that the package imports no OpenTelemetry until an observer is made."""

from __future__ import annotations

import atexit
import gc
import json
import os
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyflue.observability import OpenTelemetryObserver, create_opentelemetry_observer
from tests.otel.spans import Events, attrs, is_error, one

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_750_000_000.0


def _python(code: str) -> subprocess.CompletedProcess[str]:
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


def test_importing_the_package_and_every_module_in_it_imports_no_opentelemetry() -> None:
    proc = _python(
        """
        import pkgutil, sys
        import pyflue.observability

        names = sorted(m.name for m in pkgutil.iter_modules(pyflue.observability.__path__))
        for name in names:
            __import__(f"pyflue.observability.{name}")
        loaded = sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry."))
        print(len(names), loaded)
        pyflue.observability.create_opentelemetry_observer().shutdown()
        print("opentelemetry.trace" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    modules, made = proc.stdout.splitlines()
    count, loaded = modules.split(" ", 1)
    assert int(count) >= 8  # the core and one handler per family
    assert loaded == "[]"
    assert made == "True"  # making an observer is what imports it


@pytest.fixture
def exit_hooks(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], object]]:
    """The callables registered with ``atexit`` while the test runs (and not unregistered since)."""
    hooks: list[Callable[[], object]] = []

    def register(hook: Callable[[], object]) -> Callable[[], object]:
        hooks.append(hook)
        return hook

    def unregister(hook: Callable[[], object]) -> None:
        hooks[:] = [h for h in hooks if h != hook]

    monkeypatch.setattr(atexit, "register", register)
    monkeypatch.setattr(atexit, "unregister", unregister)
    return hooks


def test_an_observer_dropped_without_shutdown_is_collected_with_its_exit_hook(
    exit_hooks: list[Callable[[], object]],
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=TracerProvider(shutdown_on_exit=False))
    assert len(exit_hooks) == 1  # an observer not shut down is shut down at exit
    dead = weakref.ref(observer)
    del observer
    gc.collect()
    assert dead() is None  # the exit hook does not keep it alive
    assert exit_hooks == []  # nor does the process keep its hook


def test_close_ends_open_spans_like_shutdown_and_unregisters_the_exit_hook(
    provider: TracerProvider, exporter: InMemorySpanExporter, exit_hooks: list[Callable[[], object]]
) -> None:
    observer = create_opentelemetry_observer(tracer_provider=provider, capture_content=True)
    assert isinstance(observer, OpenTelemetryObserver)
    assert observer.capture_content is True
    assert len(exit_hooks) == 1
    ev = Events()
    observer(ev("operation_start", T0, {"kind": "prompt", "input": "hi"}, op="op1"))
    observer(ev("tool_start", T0 + 1, {"tool": "lookup", "call_id": "c1"}, op="op1"))
    assert observer.open_spans == 2
    observer.close()
    assert observer.open_spans == 0
    assert exit_hooks == []
    spans = exporter.get_finished_spans()
    for name in ("invoke_agent agent", "execute_tool lookup"):
        assert is_error(one(spans, name))
        assert attrs(one(spans, name))["error.type"] == "interrupted"
    observer(ev("operation_end", T0 + 2, {"status": "completed"}, op="op1"))
    observer.close()  # idempotent, and events after it change nothing
    assert len(exporter.get_finished_spans()) == 2


def test_every_observer_alive_at_exit_ends_its_own_spans() -> None:
    proc = _python(
        """
        import json, time
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
        from pyflue.events import Event
        from pyflue.observability import create_opentelemetry_observer

        class Printer(SpanExporter):
            def __init__(self, label):
                self.label = label
            def export(self, spans):
                for s in spans:
                    error = (s.attributes or {}).get("error.type")
                    print(json.dumps([self.label, s.name, error]), flush=True)
                return SpanExportResult.SUCCESS

        observers = []
        for label in ("a", "b"):
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(Printer(label)))
            observer = create_opentelemetry_observer(tracer_provider=provider)
            observer(Event("operation_start", {"kind": "prompt"}, 1, None, label, "i", "s", "op", None,
                           ts=time.time()))
            observers.append(observer)
        closed = create_opentelemetry_observer(tracer_provider=TracerProvider())
        closed.shutdown()
        print("exiting", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "exiting"
    assert sorted(json.loads(line) for line in lines[1:]) == [
        ["a", "invoke_agent a", "interrupted"],
        ["b", "invoke_agent b", "interrupted"],
    ]
