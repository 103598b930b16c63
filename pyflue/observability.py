"""OpenTelemetry export of the event stream, following the GenAI semantic conventions.

:func:`create_opentelemetry_observer` returns a sync observer (``init(on_event=...)`` or
:func:`pyflue.observe`) that turns events into spans and, with a meter provider, metrics:

=====================  ==========================================  ========  =========================
events                 span                                        kind      parent
=====================  ==========================================  ========  =========================
run_start / run_end    ``invoke_workflow {workflow}``              INTERNAL  the active span, if any
operation_start / end  ``invoke_agent {agent}``                    INTERNAL  parent op (task), run, or
                                                                             the active span
model_start / end      ``chat {model}``                            CLIENT    compaction or operation
tool_start / end       ``execute_tool {tool}``                     INTERNAL  operation
compaction_start / end ``compaction {agent}``                      INTERNAL  operation, else run
log, abort, error,     span events on the operation span (else
custom                 the run span)
=====================  ==========================================  ========  =========================

Parents come from the events' correlation ids (``run_id``, ``operation_id``, ``parent_id``, ``call_id``),
never from "the last span opened", so concurrent tools and tasks still make one tree. Start and end
times are the events' timestamps. Between its start and end events a span is current in the emitting
task, so spans made inside a tool or a model call (an instrumented HTTP client) nest under it. A span
whose end event never comes (events lost, an observer attached mid-run) ends with its parent;
:meth:`OpenTelemetryObserver.shutdown` (also run at exit) ends every span still open with status
ERROR, ``error.type`` ``interrupted``.

opentelemetry is imported when the factory is called, never by ``import pyflue``.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .events import BUILTIN_TYPES, Event

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["OpenTelemetryObserver", "create_opentelemetry_observer"]

_log = logging.getLogger("pyflue.observability")

# -- attribute names (OpenTelemetry GenAI semantic conventions; pyflue.* for our own) ---------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
CONVERSATION_ID = "gen_ai.conversation.id"
WORKFLOW_NAME = "gen_ai.workflow.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

#: ModelSettings keys → request attributes (others have no convention and are not recorded).
_SETTINGS: dict[str, tuple[str, bool]] = {  # key: (attribute, integer only)
    "max_tokens": ("gen_ai.request.max_tokens", True),
    "temperature": ("gen_ai.request.temperature", False),
    "top_p": ("gen_ai.request.top_p", False),
    "top_k": ("gen_ai.request.top_k", False),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", False),
    "presence_penalty": ("gen_ai.request.presence_penalty", False),
    "seed": ("gen_ai.request.seed", True),
}

# Explicit bucket boundaries the conventions advise for each histogram.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, ... 67108864
_CLIENT_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
_AGENT_BUCKETS = [0.1 * 2**i for i in range(13)]  # 0.1 ... 409.6 s
_WORKFLOW_BUCKETS = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0]

INTERRUPTED = "interrupted"


class _Node:
    """One open span and where it is filed, so ending it unfiles it and ends its open children."""

    __slots__ = (
        "attrs",
        "children",
        "end_metric",
        "filed",
        "finish",
        "kind",
        "parent",
        "previous",
        "span",
        "start",
        "text",
    )

    def __init__(
        self,
        kind: str,
        span: Span,
        start: float,
        parent: _Node | None,
        filed: tuple[dict[Any, list[_Node]], Any],
        attrs: dict[str, AttributeValue],
    ) -> None:
        self.kind = kind
        self.span = span
        self.start = start
        self.parent = parent
        self.filed = filed
        self.attrs = attrs  # attributes metrics need (low-cardinality ones)
        self.children: list[_Node] = []
        self.text: list[dict[str, Any]] | None = None  # captured output parts of a model call
        self.finish: str | None = None  # an operation's last finish reason
        self.previous: Context | None = None  # the context before this span was made current
        self.end_metric: Callable[[_Node, float, str | None], None] | None = None
        if parent is not None:
            parent.children.append(self)


class _Task:
    """A subagent task announced by ``task_start`` whose operation has not started yet."""

    __slots__ = ("agent", "call_id", "parent_op")

    def __init__(self, parent_op: str | None, call_id: str | None, agent: str | None) -> None:
        self.parent_op = parent_op
        self.call_id = call_id
        self.agent = agent


class OpenTelemetryObserver:
    """A sync event observer that exports spans (and metrics). Call :meth:`shutdown` to end what is
    still open; it runs at interpreter exit too."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        try:
            from opentelemetry import context as otel_context
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ConfigError(
                "create_opentelemetry_observer needs opentelemetry-api: pip install 'pyflue[otel]'"
            ) from exc
        from . import __version__

        self.capture_content = capture_content
        self._provider = tracer_provider
        self._tracer: Tracer = trace.get_tracer("pyflue", __version__, tracer_provider=tracer_provider)
        self._trace = trace
        self._get_current: Callable[[], Context] = otel_context.get_current
        self._attach: Callable[[Context], object] = otel_context.attach
        self._lock = threading.RLock()  # re-entrant: an exporter that emits events must not deadlock
        self._runs: dict[Any, list[_Node]] = {}
        self._ops: dict[Any, list[_Node]] = {}
        self._chats: dict[Any, list[_Node]] = {}
        self._tools: dict[Any, list[_Node]] = {}
        self._compactions: dict[Any, list[_Node]] = {}
        self._tasks: dict[str, _Task] = {}  # by the task's operation id, until that operation starts
        self._closed = False
        self._failures = 0
        self._handlers: dict[str, Callable[[Event], None]] = {
            "run_start": self._run_start,
            "run_end": self._run_end,
            "operation_start": self._operation_start,
            "operation_end": self._operation_end,
            "model_start": self._model_start,
            "model_end": self._model_end,
            "tool_start": self._tool_start,
            "tool_end": self._tool_end,
            "task_start": self._task_start,
            "task_end": self._task_end,
            "compaction_start": self._compaction_start,
            "compaction_end": self._compaction_end,
            "log": self._log_line,
            "abort": self._abort,
            "error": self._error,
        }
        self._token_usage: Histogram | None = None
        self._client_duration: Histogram | None = None
        self._agent_duration: Histogram | None = None
        self._tool_duration: Histogram | None = None
        self._workflow_duration: Histogram | None = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("pyflue", __version__)
            self._token_usage = meter.create_histogram(
                "gen_ai.client.token.usage",
                "{token}",
                "Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            )
            self._client_duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                "s",
                "GenAI operation duration.",
                explicit_bucket_boundaries_advisory=_CLIENT_BUCKETS,
            )
            self._agent_duration = meter.create_histogram(
                "gen_ai.invoke_agent.duration",
                "s",
                "The end-to-end duration of a single agent invocation.",
                explicit_bucket_boundaries_advisory=_AGENT_BUCKETS,
            )
            self._tool_duration = meter.create_histogram(
                "gen_ai.execute_tool.duration",
                "s",
                "The duration of a single tool execution.",
                explicit_bucket_boundaries_advisory=_CLIENT_BUCKETS,
            )
            self._workflow_duration = meter.create_histogram(
                "gen_ai.workflow.duration",
                "s",
                "GenAI workflow duration.",
                explicit_bucket_boundaries_advisory=_WORKFLOW_BUCKETS,
            )
        _live.add(self)
        # atexit runs last-registered first: registering again here puts our hook ahead of any tracer
        # provider made before this observer, so the spans we end at exit still reach its exporter.
        atexit.unregister(_shutdown_all)
        atexit.register(_shutdown_all)

    # -- the observer --------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        kind = event.type
        handler: Callable[[Event], None]
        if kind == "text_delta" or kind == "thinking_delta":  # the hot path: one per streamed chunk
            if not self.capture_content:
                return
            handler = self._delta
        else:
            found = self._handlers.get(kind)
            if found is None:
                if kind in BUILTIN_TYPES:
                    return  # dispatch_* and anything else without a span of its own
                found = self._custom
            handler = found
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
            return sum(
                len(nodes)
                for table in (self._runs, self._ops, self._chats, self._tools, self._compactions)
                for nodes in table.values()
            )

    def shutdown(self) -> None:
        """End every open span (status ERROR, ``error.type`` ``interrupted``) and flush the tracer
        provider. Idempotent; runs at interpreter exit for every live observer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            now = time.time()
            roots = [
                node
                for table in (self._runs, self._ops, self._chats, self._tools, self._compactions)
                for nodes in table.values()
                for node in nodes
                if node.parent is None
            ]
            for node in roots:
                try:
                    self._end(
                        node, now, INTERRUPTED, "interrupted: the process shut down mid-run", INTERRUPTED
                    )
                except Exception:
                    _log.debug("could not end a span at shutdown", exc_info=True)
        _live.discard(self)
        provider = self._provider if self._provider is not None else self._trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            try:
                flush(5_000)
            except Exception:
                _log.debug("force_flush failed at shutdown", exc_info=True)

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _start(
        self,
        kind: str,
        name: str,
        event: Event,
        parent: _Node | None,
        table: dict[Any, list[_Node]],
        key: Any,
        attributes: dict[str, AttributeValue],
        *,
        span_kind: Any = None,
        metric_attrs: dict[str, AttributeValue] | None = None,
    ) -> _Node:
        trace = self._trace
        if parent is not None:
            context = trace.set_span_in_context(parent.span)
        else:
            context = self._get_current()  # an active span (e.g. an HTTP server span) becomes the parent
        start = event.timestamp
        span = self._tracer.start_span(
            name,
            context=context,
            kind=span_kind if span_kind is not None else trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(start),
        )
        node = _Node(kind, span, start, parent, (table, key), metric_attrs or {})
        table.setdefault(key, []).append(node)
        if span.get_span_context().is_valid:
            # Current in the emitting task until the end event, so spans made inside (a tool's own
            # spans, an instrumented HTTP client under a model call) nest under ours.
            node.previous = self._get_current()
            self._attach(trace.set_span_in_context(span))
        return node

    def _end(
        self,
        node: _Node,
        when: float,
        error_type: str | None,
        description: str | None = None,
        status: str | None = None,
        duration: float | None = None,
    ) -> None:
        """End ``node`` (open children first, with the same outcome) and unfile it."""
        if node.children:
            why = f"ended with its {node.kind}" + (f" ({status})" if status else "")
            for child in list(node.children):
                self._end(child, when, error_type or INTERRUPTED, why, INTERRUPTED)
        table, key = node.filed
        nodes = table.get(key)
        if nodes is not None:
            try:
                nodes.remove(node)
            except ValueError:
                pass
            if not nodes:
                del table[key]
        if node.parent is not None:
            try:
                node.parent.children.remove(node)
            except ValueError:
                pass
        span = node.span
        if node.previous is not None and not self._closed and self._trace.get_current_span() is span:
            self._attach(node.previous)  # the emitting task gets back the context it had at the start
        if status is not None and node.kind in ("run", "operation"):
            span.set_attribute(f"pyflue.{node.kind}.status", status)
        if error_type is not None:
            span.set_attribute(ERROR_TYPE, error_type)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description or error_type))
        if node.end_metric is not None:
            seconds = duration if duration is not None else max(0.0, when - node.start)
            node.end_metric(node, seconds, error_type)
        span.end(end_time=_ns(when))

    def _first(self, table: dict[Any, list[_Node]], key: Any) -> _Node | None:
        nodes = table.get(key)
        return nodes[0] if nodes else None

    def _scope_of(self, event: Event) -> _Node | None:
        """The span events of this operation (or run) belong to."""
        if event.operation_id is not None:
            node = self._first(self._ops, event.operation_id)
            if node is not None:
                return node
        if event.run_id is not None:
            return self._first(self._runs, event.run_id)
        return None

    # -- runs ----------------------------------------------------------------------------------------

    def _run_start(self, event: Event) -> None:
        data = event.data
        workflow = str(data.get("workflow") or "workflow")
        attributes: dict[str, AttributeValue] = {
            OPERATION_NAME: "invoke_workflow",
            WORKFLOW_NAME: workflow,
        }
        if event.run_id is not None:
            attributes["pyflue.run_id"] = event.run_id
        if self.capture_content and "payload" in data:
            attributes["pyflue.run.payload"] = _json(data["payload"])
        node = self._start(
            "run",
            f"invoke_workflow {workflow}",
            event,
            None,
            self._runs,
            event.run_id,
            attributes,
            metric_attrs={WORKFLOW_NAME: workflow},
        )
        node.end_metric = self._workflow_metric

    def _run_end(self, event: Event) -> None:
        node = self._first(self._runs, event.run_id)
        if node is None:
            return
        data = event.data
        status = str(data.get("status") or "completed")
        error_type, description = _outcome(status, data.get("error"))
        if self.capture_content and "result" in data:
            node.span.set_attribute("pyflue.run.result", _json(data["result"]))
        self._end(node, event.timestamp, error_type, description, status, _seconds(data))

    def _workflow_metric(self, node: _Node, seconds: float, error_type: str | None) -> None:
        if self._workflow_duration is not None:
            self._workflow_duration.record(seconds, _with_error(node.attrs, error_type))

    # -- operations (invoke_agent) -------------------------------------------------------------------

    def _operation_start(self, event: Event) -> None:
        data = event.data
        task = self._tasks.pop(event.operation_id, None) if event.operation_id is not None else None
        # A subagent is named by its profile; the envelope names the agent whose instance runs it.
        agent = (task.agent if task is not None else None) or event.agent or "agent"
        parent: _Node | None = None
        parent_op = event.parent_id or (task.parent_op if task else None)
        if task is not None and task.call_id is not None:
            parent = self._first(self._tools, (task.parent_op, task.call_id))
        if parent is None and parent_op is not None:
            parent = self._first(self._ops, parent_op)
        if parent is None and event.run_id is not None:
            parent = self._first(self._runs, event.run_id)
        attributes: dict[str, AttributeValue] = {OPERATION_NAME: "invoke_agent", AGENT_NAME: agent}
        if event.instance_id is not None:
            attributes[AGENT_ID] = event.instance_id
        if event.session_id is not None:
            attributes[CONVERSATION_ID] = event.session_id
        if event.operation_id is not None:
            attributes["pyflue.operation_id"] = event.operation_id
        if data.get("kind"):
            attributes["pyflue.operation.kind"] = str(data["kind"])
        if event.run_id is not None:
            attributes["pyflue.run_id"] = event.run_id
        if parent_op is not None:
            attributes["pyflue.parent_operation_id"] = parent_op
        if self.capture_content and "input" in data:
            attributes[INPUT_MESSAGES] = _json([{"role": "user", "parts": _parts(data["input"])}])
        node = self._start(
            "operation",
            f"invoke_agent {agent}",
            event,
            parent,
            self._ops,
            event.operation_id,
            attributes,
            metric_attrs={AGENT_NAME: agent},
        )
        node.end_metric = self._agent_metric

    def _operation_end(self, event: Event) -> None:
        node = self._first(self._ops, event.operation_id)
        if node is None:
            return
        data = event.data
        status = str(data.get("status") or "completed")
        span = node.span
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            for key, value in _usage_attributes(usage).items():
                span.set_attribute(key, value)
        if self.capture_content and data.get("text") is not None:
            finish = node.finish
            message: dict[str, Any] = {
                "role": "assistant",
                "parts": [{"type": "text", "content": str(data["text"])}],
            }
            if finish:
                message["finish_reason"] = finish
            span.set_attribute(OUTPUT_MESSAGES, _json([message]))
        error_type, description = _outcome(status, data.get("error"))
        self._end(node, event.timestamp, error_type, description, status, _seconds(data))

    def _agent_metric(self, node: _Node, seconds: float, error_type: str | None) -> None:
        if self._agent_duration is not None:
            self._agent_duration.record(seconds, _with_error(node.attrs, error_type))

    def _abort(self, event: Event) -> None:
        node = self._scope_of(event)
        if node is not None:
            reason = str(event.data.get("reason") or "aborted")
            node.span.set_attribute("pyflue.abort.reason", reason)
            node.span.add_event("pyflue.abort", {"reason": reason}, timestamp=_ns(event.timestamp))

    # -- model calls (chat) --------------------------------------------------------------------------

    def _model_start(self, event: Event) -> None:
        data = event.data
        provider = str(data.get("provider") or "unknown")
        model = data.get("model")
        op = self._first(self._ops, event.operation_id)
        parent = self._first(self._compactions, event.operation_id) or op
        attributes: dict[str, AttributeValue] = {OPERATION_NAME: "chat", PROVIDER_NAME: provider}
        if model:
            attributes[REQUEST_MODEL] = str(model)
        if op is not None:
            # The agent span learns its model at the first call (the model may be chosen per prompt).
            op.span.set_attribute(PROVIDER_NAME, provider)
            if model:
                op.span.set_attribute(REQUEST_MODEL, str(model))
        if event.session_id is not None:
            attributes[CONVERSATION_ID] = event.session_id
        settings = data.get("settings")
        if isinstance(settings, Mapping):
            for key, (name, integer) in _SETTINGS.items():
                value = settings.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    if isinstance(value, int) or not integer:
                        attributes[name] = value
            stop = settings.get("stop")
            if isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
                attributes["gen_ai.request.stop_sequences"] = list(stop)
        name = f"chat {model}" if model else "chat"
        metric_attrs: dict[str, AttributeValue] = {OPERATION_NAME: "chat", PROVIDER_NAME: provider}
        if model:
            metric_attrs[REQUEST_MODEL] = str(model)
        node = self._start(
            "model call",
            name,
            event,
            parent,
            self._chats,
            event.operation_id,
            attributes,
            span_kind=self._trace.SpanKind.CLIENT,
            metric_attrs=metric_attrs,
        )
        node.end_metric = self._client_metric
        if self.capture_content:
            node.text = []

    def _delta(self, event: Event) -> None:
        node = self._first(self._chats, event.operation_id)
        if node is None or node.text is None:
            return
        kind = "text" if event.type == "text_delta" else "reasoning"
        text = str(event.data.get("text") or "")
        if node.text and node.text[-1]["type"] == kind:
            node.text[-1]["content"] += text
        else:
            node.text.append({"type": kind, "content": text})

    def _model_end(self, event: Event) -> None:
        node = self._first(self._chats, event.operation_id)
        if node is None:
            return
        data = event.data
        span = node.span
        error = data.get("error")
        if error is None:
            if data.get("response_id"):
                span.set_attribute(RESPONSE_ID, str(data["response_id"]))
            if data.get("response_model"):
                span.set_attribute(RESPONSE_MODEL, str(data["response_model"]))
                node.attrs[RESPONSE_MODEL] = str(data["response_model"])
            finish = data.get("finish_reason")
            if finish:
                span.set_attribute(FINISH_REASONS, [str(finish)])
            usage = data.get("usage")
            if isinstance(usage, Mapping):
                for key, value in _usage_attributes(usage).items():
                    span.set_attribute(key, value)
                self._record_tokens(node, usage)
            if node.text:  # a response of tool calls only has no parts here: see its execute_tool spans
                message: dict[str, Any] = {"role": "assistant", "parts": node.text}
                if finish:
                    message["finish_reason"] = str(finish)
                span.set_attribute(OUTPUT_MESSAGES, _json([message]))
            op = self._first(self._ops, event.operation_id)
            if op is not None and finish:
                op.finish = str(finish)
        error_type, description = _outcome("failed" if error is not None else "completed", error)
        self._end(node, event.timestamp, error_type, description, duration=_seconds(data))

    def _record_tokens(self, node: _Node, usage: Mapping[str, Any]) -> None:
        if self._token_usage is None:
            return
        for token_type, key in (("input", "input_tokens"), ("output", "output_tokens")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self._token_usage.record(value, {**node.attrs, TOKEN_TYPE: token_type})

    def _client_metric(self, node: _Node, seconds: float, error_type: str | None) -> None:
        if self._client_duration is not None:
            self._client_duration.record(seconds, _with_error(node.attrs, error_type))

    # -- tools ---------------------------------------------------------------------------------------

    def _tool_start(self, event: Event) -> None:
        data = event.data
        tool = str(data.get("tool") or "tool")
        call_id = _call_id(data)
        attributes: dict[str, AttributeValue] = {
            OPERATION_NAME: "execute_tool",
            TOOL_NAME: tool,
            TOOL_TYPE: "function",
        }
        if call_id:
            attributes[TOOL_CALL_ID] = call_id
        if event.agent is not None:
            attributes[AGENT_NAME] = event.agent
        if self.capture_content and "args" in data:
            attributes[TOOL_CALL_ARGUMENTS] = _json(data["args"])
        metric_attrs: dict[str, AttributeValue] = {TOOL_NAME: tool, TOOL_TYPE: "function"}
        if event.agent is not None:
            metric_attrs[AGENT_NAME] = event.agent
        node = self._start(
            "tool call",
            f"execute_tool {tool}",
            event,
            self._first(self._ops, event.operation_id),
            self._tools,
            (event.operation_id, call_id),
            attributes,
            metric_attrs=metric_attrs,
        )
        node.end_metric = self._tool_metric

    def _tool_end(self, event: Event) -> None:
        data = event.data
        node = self._first(self._tools, (event.operation_id, _call_id(data)))
        if node is None:
            return
        error = data.get("error")
        if error is None and self.capture_content and "result" in data:
            result = data["result"]
            node.span.set_attribute(TOOL_CALL_RESULT, result if isinstance(result, str) else _json(result))
        error_type, description = _outcome("failed" if error is not None else "completed", error)
        self._end(node, event.timestamp, error_type, description, duration=_seconds(data))

    def _tool_metric(self, node: _Node, seconds: float, error_type: str | None) -> None:
        if self._tool_duration is not None:
            self._tool_duration.record(seconds, _with_error(node.attrs, error_type))

    # -- subagent tasks ------------------------------------------------------------------------------

    def _task_start(self, event: Event) -> None:
        data = event.data
        task_op = data.get("task_operation_id")
        if not task_op:
            return
        call_id = _call_id(data)
        if call_id is None:
            # Started from a tool (the model's ``task`` tool, or ctx.session.task): task_start is
            # emitted in that tool's task, where our execute_tool span is current. Accept it only
            # if it is a tool call of the task's parent operation.
            current = self._trace.get_current_span()
            for (op, tool_call), nodes in self._tools.items():
                if op == event.operation_id and any(node.span is current for node in nodes):
                    call_id = tool_call
                    break
        agent = data.get("agent")
        self._tasks[str(task_op)] = _Task(event.operation_id, call_id, str(agent) if agent else None)

    def _task_end(self, event: Event) -> None:
        task_op = event.data.get("task_operation_id")
        pending = self._tasks.pop(str(task_op), None) if task_op else None
        error = event.data.get("error")
        if pending is not None and error is not None:
            # The child operation never started, so no span says why the task failed: the parent does.
            node = self._scope_of(event)
            if node is not None:
                node.span.add_event(
                    "pyflue.task_failed",
                    {
                        AGENT_NAME: str(event.data.get("agent") or ""),
                        ERROR_TYPE: _error_type(error),
                        "pyflue.task_operation_id": str(task_op),
                    },
                    timestamp=_ns(event.timestamp),
                )

    # -- compaction ----------------------------------------------------------------------------------

    def _compaction_start(self, event: Event) -> None:
        data = event.data
        attributes: dict[str, AttributeValue] = {}
        if event.agent is not None:
            attributes[AGENT_NAME] = event.agent
        if event.session_id is not None:
            attributes[CONVERSATION_ID] = event.session_id
        if event.operation_id is not None:
            attributes["pyflue.operation_id"] = event.operation_id
        if data.get("reason"):
            attributes["pyflue.compaction.reason"] = str(data["reason"])
        _set_int(attributes, "pyflue.compaction.tokens_before", data.get("tokens_before"))
        name = f"compaction {event.agent}" if event.agent else "compaction"
        self._start(
            "compaction",
            name,
            event,
            self._scope_of(event),
            self._compactions,
            _compaction_key(event),
            attributes,
        )

    def _compaction_end(self, event: Event) -> None:
        node = self._first(self._compactions, _compaction_key(event))
        if node is None:
            return
        data = event.data
        values: dict[str, AttributeValue] = {}
        _set_int(values, "pyflue.compaction.tokens_before", data.get("tokens_before"))
        _set_int(values, "pyflue.compaction.tokens_after", data.get("tokens_after"))
        _set_int(values, "pyflue.compaction.messages_summarised", data.get("messages_summarised"))
        if data.get("reason"):
            values["pyflue.compaction.reason"] = str(data["reason"])
        for key, value in values.items():
            node.span.set_attribute(key, value)
        error = data.get("error")
        error_type, description = _outcome("failed" if error is not None else "completed", error)
        self._end(node, event.timestamp, error_type, description)

    # -- span events ---------------------------------------------------------------------------------

    def _log_line(self, event: Event) -> None:
        data = event.data
        attributes: dict[str, AttributeValue] = {
            "log.level": str(data.get("level") or "info"),
            "log.message": str(data.get("message") or ""),
        }
        fields = data.get("fields")
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                attributes[f"pyflue.log.{key}"] = _attribute(value)
        node = self._scope_of(event)
        span = node.span if node is not None else self._trace.get_current_span()
        if span.is_recording():
            span.add_event("log", attributes, timestamp=_ns(event.timestamp))

    def _error(self, event: Event) -> None:
        node = self._scope_of(event)
        if node is None:
            return
        error = event.data.get("error")
        attributes: dict[str, AttributeValue] = {ERROR_TYPE: _error_type(error)}
        if isinstance(error, Mapping) and error.get("message"):
            attributes["exception.message"] = str(error["message"])
        node.span.add_event("pyflue.error", attributes, timestamp=_ns(event.timestamp))

    def _custom(self, event: Event) -> None:
        node = self._scope_of(event)
        if node is None:
            return
        attributes: dict[str, AttributeValue] = {}
        if self.capture_content:
            attributes["pyflue.event.data"] = _json(event.data)
        node.span.add_event(event.type, attributes, timestamp=_ns(event.timestamp))


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


# -- helpers ---------------------------------------------------------------------------------------

_live: weakref.WeakSet[OpenTelemetryObserver] = weakref.WeakSet()


def _shutdown_all() -> None:
    for observer in list(_live):
        observer.shutdown()


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _seconds(data: Mapping[str, Any]) -> float | None:
    value = data.get("duration_ms")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    return None


def _call_id(data: Mapping[str, Any]) -> str | None:
    value = data.get("call_id")
    return None if value is None else str(value)


_CANCELLED = frozenset({"CancelledError", "Cancelled"})  # asyncio's and trio's names


def _error_type(error: Any) -> str:
    if isinstance(error, Mapping) and error.get("type"):
        kind = str(error["type"])
        return "cancelled" if kind in _CANCELLED else kind
    return "_OTHER"


def _outcome(status: str, error: Any) -> tuple[str | None, str | None]:
    """``(error.type, status description)`` of an ending; ``(None, None)`` when it succeeded."""
    if status == "completed" and error is None:
        return None, None
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    if status == "cancelled":
        return "cancelled", message or "cancelled"
    if error is None:
        return (status if status != "failed" else "_OTHER"), status
    return _error_type(error), message or status


def _with_error(attrs: dict[str, AttributeValue], error_type: str | None) -> dict[str, AttributeValue]:
    return attrs if error_type is None else {**attrs, ERROR_TYPE: error_type}


def _usage_attributes(usage: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    _set_int(out, INPUT_TOKENS, usage.get("input_tokens"))
    _set_int(out, OUTPUT_TOKENS, usage.get("output_tokens"))
    # Zero is what an unreporting provider leaves too, so only real cache traffic is recorded.
    if usage.get("cache_read_tokens"):
        _set_int(out, CACHE_READ_TOKENS, usage.get("cache_read_tokens"))
    if usage.get("cache_write_tokens"):
        _set_int(out, CACHE_CREATION_TOKENS, usage.get("cache_write_tokens"))
    return out


def _set_int(out: dict[str, AttributeValue], key: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        out[key] = value


def _compaction_key(event: Event) -> Any:
    return event.operation_id or ("session", event.run_id, event.agent, event.instance_id, event.session_id)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _attribute(value: Any) -> AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    return _json(value)


def _parts(value: Any) -> list[dict[str, Any]]:
    """An operation's input as GenAI message parts."""
    if isinstance(value, str):
        return [{"type": "text", "content": value}]
    parts: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            parts.append({"type": "text", "content": item})
        elif isinstance(item, Mapping) and item.get("type") == "text":
            parts.append({"type": "text", "content": str(item.get("text", item.get("content", "")))})
        elif isinstance(item, Mapping):
            parts.append({"type": str(item.get("type") or "unknown"), **{k: v for k, v in item.items()}})
        else:
            parts.append({"type": "text", "content": str(item)})
    return parts
