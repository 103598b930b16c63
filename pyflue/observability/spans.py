"""The span table: every span an observer has open, filed by family and correlation key.

This is the one module that talks to the OpenTelemetry trace API (imported when a table is made, never
at import). Family handlers start spans here with an explicit parent node and end them here, so the
rules every span obeys live in one place:

- a span's start and end times are its events' timestamps;
- between its start and end events a span is current in the emitting task (spans made inside a tool
  or an instrumented HTTP client nest under it), and the end gives the task back its context;
- ending a span first ends its open children, with the parent's outcome (their own end events will
  never come), and unfiles it;
- a span that ends records its duration in the histogram it was started with.

Spans are filed per family in a :class:`SpanIndex` by correlation key (a run id, an operation id, an
(operation id, call id) pair), FIFO per key, so a key that repeats still gets one span per start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .conventions import ERROR_TYPE, INTERRUPTED
from .values import ns, with_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

    from ..events import Event
    from .values import Attributes

__all__ = ["COMPACTION", "MODEL_CALL", "OPERATION", "RUN", "TOOL_CALL", "SpanIndex", "SpanNode", "SpanTable"]

_log = logging.getLogger("pyflue.observability")

# The families the GenAI conventions (and compaction) give spans; also the words of "ended with its …".
RUN = "run"
OPERATION = "operation"
MODEL_CALL = "model call"
TOOL_CALL = "tool call"
COMPACTION = "compaction"


class SpanNode:
    """One open span, where it is filed, and what its family keeps on it until it ends."""

    __slots__ = (
        "attrs",
        "children",
        "finish",
        "histogram",
        "index",
        "key",
        "parent",
        "previous",
        "span",
        "start",
        "text",
    )

    def __init__(
        self,
        index: SpanIndex,
        key: Any,
        span: Span,
        start: float,
        parent: SpanNode | None,
        attrs: Attributes,
        histogram: Histogram | None,
    ) -> None:
        self.index = index
        self.key = key
        self.span = span
        self.start = start
        self.parent = parent
        self.attrs = attrs  # the low-cardinality attributes its metrics carry
        self.histogram = histogram  # records its duration when it ends
        self.children: list[SpanNode] = []
        self.text: list[dict[str, Any]] | None = None  # a model call's captured output parts
        self.finish: str | None = None  # an operation's last finish reason
        self.previous: Context | None = None  # the emitting task's context before this span was current
        if parent is not None:
            parent.children.append(self)


class SpanIndex:
    """One family's open spans by correlation key, first started first."""

    __slots__ = ("_open", "kind", "status_attribute")

    def __init__(self, kind: str, status_attribute: str | None) -> None:
        self.kind = kind
        #: Set to the ending's status (``completed``, ``aborted``, ``interrupted``...) when it has one.
        self.status_attribute = status_attribute
        self._open: dict[Any, list[SpanNode]] = {}

    def first(self, key: Any) -> SpanNode | None:
        """The oldest open span filed under ``key``."""
        nodes = self._open.get(key)
        return nodes[0] if nodes else None

    def items(self) -> list[tuple[Any, list[SpanNode]]]:
        """``(key, open spans)`` pairs, a snapshot."""
        return list(self._open.items())

    def __len__(self) -> int:
        return sum(len(nodes) for nodes in self._open.values())

    def _file(self, node: SpanNode) -> None:
        self._open.setdefault(node.key, []).append(node)

    def _unfile(self, node: SpanNode) -> None:
        nodes = self._open.get(node.key)
        if nodes is not None:
            try:
                nodes.remove(node)
            except ValueError:
                pass
            if not nodes:
                del self._open[node.key]


class SpanTable:
    """The open spans of one observer, and the tracer that makes them.

    Not thread-safe by itself: the observer calls it under its lock.
    """

    def __init__(self, tracer_provider: TracerProvider | None, version: str) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ConfigError(
                "create_opentelemetry_observer needs opentelemetry-api: pip install 'pyflue[otel]'"
            ) from exc
        self._provider = tracer_provider
        self._tracer: Tracer = trace.get_tracer("pyflue", version, tracer_provider=tracer_provider)
        self._global_provider: Callable[[], TracerProvider] = trace.get_tracer_provider
        self._in_context: Callable[[Span], Context] = trace.set_span_in_context
        self._current_span: Callable[[], Span] = trace.get_current_span
        self._get_current: Callable[[], Context] = context.get_current
        self._attach: Callable[[Context], object] = context.attach
        self._internal: SpanKind = trace.SpanKind.INTERNAL
        self._client: SpanKind = trace.SpanKind.CLIENT
        self._status: type[Status] = trace.Status
        self._error: StatusCode = trace.StatusCode.ERROR
        self._indexes: list[SpanIndex] = []
        self._closed = False
        self.runs = self.add(RUN, records_status=True)
        self.operations = self.add(OPERATION, records_status=True)
        self.model_calls = self.add(MODEL_CALL)
        self.tool_calls = self.add(TOOL_CALL)
        self.compactions = self.add(COMPACTION)

    def add(self, kind: str, *, records_status: bool = False) -> SpanIndex:
        """A new family of spans; with ``records_status``, an ending's status is set as
        ``pyflue.{kind}.status``."""
        if any(index.kind == kind for index in self._indexes):
            raise ValueError(f"the span table already has a {kind!r} family")
        index = SpanIndex(kind, f"pyflue.{kind}.status" if records_status else None)
        self._indexes.append(index)
        return index

    @property
    def open_count(self) -> int:
        return sum(len(index) for index in self._indexes)

    def current_span(self) -> Span:
        """The span current in the calling task (ours or the application's)."""
        return self._current_span()

    def scope_of(self, event: Event) -> SpanNode | None:
        """The span an event's span events belong to: its operation's, else its run's."""
        if event.operation_id is not None:
            node = self.operations.first(event.operation_id)
            if node is not None:
                return node
        if event.run_id is not None:
            return self.runs.first(event.run_id)
        return None

    def start(
        self,
        index: SpanIndex,
        key: Any,
        name: str,
        event: Event,
        parent: SpanNode | None,
        attributes: Attributes,
        *,
        client: bool = False,
        metric_attrs: Attributes | None = None,
        histogram: Histogram | None = None,
    ) -> SpanNode:
        """Start a span at ``event``'s time under ``parent`` (else under the active span, such as an
        HTTP server's), file it under ``key`` and make it current in the emitting task."""
        context = self._in_context(parent.span) if parent is not None else self._get_current()
        start = event.timestamp
        span = self._tracer.start_span(
            name,
            context=context,
            kind=self._client if client else self._internal,
            attributes=attributes,
            start_time=ns(start),
        )
        node = SpanNode(index, key, span, start, parent, metric_attrs or {}, histogram)
        index._file(node)
        if span.get_span_context().is_valid:  # an invalid span (no-op tracer) would hide the caller's
            node.previous = self._get_current()
            self._attach(self._in_context(span))
        return node

    def end(
        self,
        node: SpanNode,
        when: float,
        error_type: str | None,
        description: str | None = None,
        status: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """End ``node`` at ``when`` (its open children first, as ``interrupted`` unless it failed) and
        unfile it. ``seconds``, the measured duration, defaults to the span's time span."""
        if node.children:
            why = f"ended with its {node.index.kind}" + (f" ({status})" if status else "")
            for child in list(node.children):
                self.end(child, when, error_type or INTERRUPTED, why, INTERRUPTED)
        node.index._unfile(node)
        if node.parent is not None:
            try:
                node.parent.children.remove(node)
            except ValueError:
                pass
        span = node.span
        if node.previous is not None and not self._closed and self._current_span() is span:
            self._attach(node.previous)  # only the task that still has our span current gets its context
        if status is not None and node.index.status_attribute is not None:
            span.set_attribute(node.index.status_attribute, status)
        if error_type is not None:
            span.set_attribute(ERROR_TYPE, error_type)
            span.set_status(self._status(self._error, description or error_type))
        if node.histogram is not None:
            measured = seconds if seconds is not None else max(0.0, when - node.start)
            node.histogram.record(measured, with_error(node.attrs, error_type))
        span.end(end_time=ns(when))

    def close(self, when: float) -> None:
        """End every open span as ``interrupted`` (their end events will not come). Afterwards no
        context is handed back: the caller may be an exit hook in another thread."""
        self._closed = True
        roots = [
            node
            for index in self._indexes
            for _, nodes in index.items()
            for node in nodes
            if node.parent is None
        ]
        for node in roots:
            try:
                self.end(node, when, INTERRUPTED, "interrupted: the process shut down mid-run", INTERRUPTED)
            except Exception:
                _log.debug("could not end a span at shutdown", exc_info=True)

    def flush(self, timeout_ms: int = 5_000) -> None:
        """Ask the tracer provider (the global one if none was given) to export what it holds."""
        provider = self._provider if self._provider is not None else self._global_provider()
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            try:
                flush(timeout_ms)
            except Exception:
                _log.debug("force_flush failed at shutdown", exc_info=True)
