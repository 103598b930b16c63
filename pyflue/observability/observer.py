"""The observer: routes each event by type to the handler of its family, under one lock.

Each family handler (runs, operations, model calls, tools, tasks, compaction, dispatch deliveries,
span events) says which event types it takes through ``routes()``; the observer merges them into one
table once, so an event costs one dict lookup before its handler runs. A new family is a module with
such a handler, added to the list in :meth:`OpenTelemetryObserver.__init__`. Built-in types no family
routes are ignored; any other type is a custom event.

The observer owns everything it opened: :meth:`OpenTelemetryObserver.shutdown` (also ``close()``)
ends what is still open and flushes, and an exit hook registered per observer runs it at interpreter
exit. The hook holds the observer weakly and unregisters itself when the observer is shut down or
collected, so nothing outlives the observer.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from .. import __version__
from ..events import BUILTIN_TYPES
from .compaction import CompactionSpans
from .dispatch import DispatchSpans
from .metrics import Metrics
from .model_calls import ModelCallSpans
from .operations import OperationSpans
from .runs import RunSpans
from .span_events import SpanEvents
from .spans import SpanTable
from .tasks import TaskLinks
from .tools import ToolCallSpans

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ..events import Event

__all__ = ["EventFamily", "OpenTelemetryObserver", "create_opentelemetry_observer"]

_log = logging.getLogger("pyflue.observability")


class EventFamily(Protocol):
    """A handler of one family of events (its start and end, or its moments)."""

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        """Event type → the method that handles it."""
        ...


class OpenTelemetryObserver:
    """A sync event observer that exports spans (and metrics). Call :meth:`shutdown` to end what is
    still open; it runs at interpreter exit too."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        self._capture = capture_content
        self._spans = spans = SpanTable(tracer_provider, __version__)
        metrics = Metrics(meter_provider, __version__)
        tasks = TaskLinks(spans)
        span_events = SpanEvents(spans, capture_content)
        families: tuple[EventFamily, ...] = (
            RunSpans(spans, metrics, capture_content),
            OperationSpans(spans, metrics, capture_content, tasks),
            ModelCallSpans(spans, metrics, capture_content),
            ToolCallSpans(spans, metrics, capture_content),
            tasks,
            CompactionSpans(spans),
            DispatchSpans(spans),
            span_events,
        )
        self._routes: dict[str, Callable[[Event], None]] = {}
        for family in families:
            for kind, handler in family.routes().items():
                if kind in self._routes:
                    raise ValueError(f"two event families handle {kind!r}")
                self._routes[kind] = handler
        self._custom = span_events.custom
        self._lock = threading.RLock()  # re-entrant: an exporter that emits events must not deadlock
        self._closed = False
        self._failures = 0
        # atexit runs last-registered first, so this hook runs before the exit hook of any tracer
        # provider made before this observer, and the spans it ends still reach that provider.
        self._exit_hook = _ExitHook(self)
        atexit.register(self._exit_hook)

    @property
    def capture_content(self) -> bool:
        """Whether prompts, outputs, tool arguments and results, payloads are recorded."""
        return self._capture

    def __call__(self, event: Event) -> None:
        kind = event.type
        if (kind == "text_delta" or kind == "thinking_delta") and not self._capture:
            return  # the hot path, one per streamed chunk: before any lookup and the lock
        handler = self._routes.get(kind)
        if handler is None:
            if kind in BUILTIN_TYPES:
                return  # a built-in type no family has a span for
            handler = self._custom
        with self._lock:
            if self._closed:
                return
            try:
                handler(event)
            except Exception:
                # Tracing must never break a run, nor stop tracing the rest of it.
                self._failures += 1
                if self._failures == 1:
                    _log.exception(
                        "OpenTelemetry observer failed on %r; later failures are not logged", event
                    )

    @property
    def open_spans(self) -> int:
        """How many spans this observer has started and not yet ended."""
        with self._lock:
            return self._spans.open_count

    def shutdown(self) -> None:
        """End every open span (status ERROR, ``error.type`` ``interrupted``) and flush the tracer
        provider. Idempotent; runs at interpreter exit for an observer not shut down before."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._spans.close(time.time())
        atexit.unregister(self._exit_hook)
        self._spans.flush()

    def close(self) -> None:
        """The same as :meth:`shutdown`."""
        self.shutdown()


class _ExitHook:
    """Shuts one observer down at interpreter exit, without keeping it alive."""

    __slots__ = ("_observer",)

    def __init__(self, observer: OpenTelemetryObserver) -> None:
        self._observer = weakref.ref(observer, self._collected)

    def _collected(self, _: object) -> None:
        atexit.unregister(self)

    def __call__(self) -> None:
        observer = self._observer()
        if observer is not None:
            observer.shutdown()


def create_opentelemetry_observer(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool = False,
) -> OpenTelemetryObserver:
    """An observer exporting spans (and, with ``meter_provider``, metrics) per the OpenTelemetry
    GenAI semantic conventions.

    ``tracer_provider``: defaults to the global one (``opentelemetry.trace.set_tracer_provider``),
    resolved lazily, so the provider may be configured after the observer is made.
    ``capture_content``: record prompts, outputs, tool arguments and results, run payloads and results
    on the spans (off by default: they may hold personal data).

    Use it as ``init(on_event=observer)`` for one agent instance or ``pyflue.observe(observer)`` for
    every run and operation in the process.
    """
    return OpenTelemetryObserver(tracer_provider, meter_provider, capture_content)
