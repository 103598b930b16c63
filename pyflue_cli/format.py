"""Events → lines of text: what a person reads, whether on a live terminal or in a CI log.

:class:`EventFormatter` is pure (no rich, no IO), so the live view, the plain ``--stream`` output and
``pyflue logs`` show a run the same way, and the tests can check it without a terminal. It keeps
just enough state to lay the stream out: how deep each operation is nested (subagent tasks are
indented under the operation that started them, by ``parent_id``), the text streamed so far per
operation (printed a line at a time, so concurrent tasks never interleave mid-line), and what is
running right now: every model call, tool call, subagent task and compaction in progress, each
its own line under the spinner, so concurrent tools are all visible while they run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .jsontext import dumps, record_fields

__all__ = ["Activity", "EventFormatter", "Line", "Summary", "format_duration", "format_tokens"]


class Line(NamedTuple):
    """One line to show: its nesting ``depth``, a semantic ``style`` and the text."""

    depth: int
    style: str
    text: str


@dataclass(slots=True)
class Activity:
    """Something in progress, shown with a spinner until it ends."""

    label: str
    started: float
    depth: int = 0


@dataclass(slots=True)
class Summary:
    """How a run or a prompt ended: the last line of the view."""

    status: str
    duration_ms: float | None = None
    usage: dict[str, int] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    run_id: str | None = None

    @classmethod
    def of_run(cls, record: Any, models: list[str] | None = None) -> Summary:
        """The summary of a stored run record (when its ``run_end`` was not among the events read)."""
        data = record_fields(record, ("status", "duration_ms", "usage", "error", "run_id"))
        return cls(models=models or [], **data)

    def line(self) -> Line:
        mark = {"completed": "✓", "failed": "✗", "cancelled": "■", "interrupted": "■"}.get(self.status, "•")
        parts = [f"{mark} {self.status}"]
        if self.duration_ms is not None:
            parts[0] += f" in {format_duration(self.duration_ms)}"
        tokens = format_tokens(self.usage)
        if tokens:
            parts.append(tokens)
        if self.models:
            parts.append(", ".join(self.models))
        style = "summary.ok" if self.status == "completed" else "summary.fail"
        return Line(0, style, " · ".join(parts))


_TEXT_PREVIEW = 80


class EventFormatter:
    """Feed it events in order; it returns the lines each one adds."""

    def __init__(self, *, show_header: bool = True, show_run_error: bool = True) -> None:
        self.show_header = show_header
        self.show_run_error = show_run_error  # `pyflue run` prints it on stderr instead
        self._depth: dict[str, int] = {}
        self._buffers: dict[str, str] = {}
        self._streamed: set[str] = set()
        self._scopes: dict[str, Activity] = {}  # the run and its operations: what holds the rest
        self._activities: dict[str, Activity] = {}  # model calls, tools, tasks, compaction
        self._models: list[str] = []
        self.providers: set[str] = set()
        self.summary: Summary | None = None
        self.run_id: str | None = None
        self.workflow: str | None = None
        self.last_operation_end: dict[str, Any] | None = None

    # -- state exposed to views --------------------------------------------------------------------

    def running(self) -> list[Activity]:
        """What is in progress, oldest first: every model call, tool call, task and compaction, or,
        between those, the innermost operation (or the run) that is still going."""
        if self._activities:
            return sorted(self._activities.values(), key=lambda a: a.started)
        if self._scopes:
            return [max(self._scopes.values(), key=lambda a: a.started)]
        return []

    def pending(self) -> list[Line]:
        """Streamed text not yet ended by a newline (the live view shows it under the log)."""
        return [Line(self._depth.get(op, 0), "text", text) for op, text in self._buffers.items() if text]

    @property
    def models(self) -> list[str]:
        return list(self._models)

    # -- events ------------------------------------------------------------------------------------

    def feed(self, event: Any) -> list[Line]:
        handler = getattr(self, "_on_" + event.type, None)
        if handler is None:
            return self._custom(event)
        lines: list[Line] = handler(event, event.data or {})
        return lines

    def flush(self) -> list[Line]:
        """Lines still buffered (text without a final newline) when the stream stops."""
        lines: list[Line] = []
        for op in list(self._buffers):
            lines += self._flush_text(op)
        return lines

    def _depth_of(self, event: Any) -> int:
        op = event.operation_id
        if op is None:
            return 0
        if op not in self._depth:
            parent = event.parent_id
            self._depth[op] = self._depth.get(parent, 0) + 1 if parent else 0
        return self._depth[op]

    def _on_run_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        self.run_id = event.run_id
        self.workflow = data.get("workflow")
        self._scopes["run"] = Activity(f"running {self.workflow or 'workflow'}", time.monotonic())
        if not self.show_header:
            return []
        return [Line(0, "header", f"▶ {self.workflow}  {event.run_id}")]

    def _on_run_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        lines = self.flush()
        self._scopes.clear()
        self._activities.clear()
        self.summary = Summary(
            status=str(data.get("status", "completed")),
            duration_ms=data.get("duration_ms"),
            usage=data.get("usage") or {},
            models=self.models,
            error=data.get("error"),
            run_id=event.run_id,
        )
        error = data.get("error")
        if error and self.show_run_error:
            lines.append(Line(0, "error", _error(error)))
            trace = error.get("traceback") if isinstance(error, dict) else None
            lines += [Line(1, "traceback", line) for line in str(trace or "").rstrip().splitlines()]
        return lines

    def _on_log(self, event: Any, data: dict[str, Any]) -> list[Line]:
        level = str(data.get("level", "info")).lower()
        fields = data.get("fields") or {}
        extra = "  " + " ".join(f"{k}={_short(v, 40)}" for k, v in fields.items()) if fields else ""
        style = {"error": "log.error", "critical": "log.error", "warning": "log.warning"}.get(level, "log")
        return [Line(self._depth_of(event), style, f"{level:<7} {data.get('message', '')}{extra}")]

    def _on_operation_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        depth = self._depth_of(event)
        kind = data.get("kind", "prompt")
        who = event.agent or "agent"
        self._scopes[event.operation_id or "?"] = Activity(f"{who}: {kind}", time.monotonic(), depth)
        if event.parent_id:  # a subagent task's own operation: task_start named it; show its input
            return [Line(depth, "dim", f"« {_short(data.get('input'), _TEXT_PREVIEW)} »")]
        where = [
            x
            for x in (event.instance_id, event.session_id)
            if x and x != "default" and x != event.run_id and not x.startswith("task:")
        ]
        label = f"{who} ({'/'.join(where)})" if where else who
        return [Line(depth, "operation", f"● {label} · {kind}  {_short(data.get('input'), _TEXT_PREVIEW)}")]

    def _on_operation_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        op = event.operation_id or "?"
        depth = self._depth_of(event)
        lines = self._flush_text(op)
        text = data.get("text")
        if text and op not in self._streamed:
            lines += [Line(depth, "text", line) for line in str(text).splitlines()]
        self._scopes.pop(op, None)
        if depth == 0:
            self.last_operation_end = data
        status = data.get("status", "completed")
        if status != "completed":
            detail = f": {_error(data['error'])}" if data.get("error") else ""
            lines.append(Line(depth, "error", f"✗ {event.agent or 'operation'} {status}{detail}"))
        return lines

    def _on_model_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        provider, name = data.get("provider"), data.get("model")
        model = f"{provider}/{name}" if provider and provider != name else str(name)
        if provider:
            self.providers.add(str(provider))
        if model not in self._models:
            self._models.append(model)
        key = f"model:{event.operation_id}"
        self._activities[key] = Activity(f"thinking ({model})", time.monotonic(), self._depth_of(event))
        return []

    def _on_model_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        self._activities.pop(f"model:{event.operation_id}", None)
        if data.get("error"):
            return [Line(self._depth_of(event), "error", f"✗ model call failed: {_error(data['error'])}")]
        return []

    def _on_text_delta(self, event: Any, data: dict[str, Any]) -> list[Line]:
        op = event.operation_id or "?"
        self._streamed.add(op)
        text = self._buffers.get(op, "") + str(data.get("text", ""))
        *done, rest = text.split("\n")
        self._buffers[op] = rest
        depth = self._depth_of(event)
        return [Line(depth, "text", line) for line in done]

    def _on_thinking_delta(self, event: Any, data: dict[str, Any]) -> list[Line]:
        return []

    def _on_tool_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        label = f"{data.get('tool')}({_args(data.get('args'))})"
        self._activities[_tool_key(event, data)] = Activity(
            f"tool {label}", time.monotonic(), self._depth_of(event)
        )
        return []

    def _on_tool_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        self._activities.pop(_tool_key(event, data), None)
        depth = self._depth_of(event)
        lines = self._flush_text(event.operation_id or "?")
        took = format_duration(data.get("duration_ms"))
        if data.get("error"):
            lines.append(Line(depth, "tool.error", f"✗ {data.get('tool')}  {took}  {_error(data['error'])}"))
        else:
            result = _short(data.get("result"), 60)
            lines.append(Line(depth, "tool", f"✓ {data.get('tool')}  {took}  → {result}"))
        return lines

    def _on_task_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        depth = self._depth_of(event)
        child = data.get("task_operation_id")
        if child:
            self._depth[child] = depth + 1
        agent = data.get("agent")
        if data.get("call_id"):  # started by the `task` tool: the task's line replaces the tool's
            self._activities.pop(_tool_key(event, data), None)
        label = f"task {agent}" if agent else "task"
        self._activities[f"task:{child}"] = Activity(label, time.monotonic(), depth)
        return [Line(depth, "task", f"↳ task {agent}" if agent else "↳ task")]

    def _on_task_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        self._activities.pop(f"task:{data.get('task_operation_id')}", None)
        depth = self._depth_of(event)
        agent = data.get("agent") or ""
        status = data.get("status", "completed")
        took = format_duration(data.get("duration_ms"))
        if data.get("error") or status not in ("completed", None):
            detail = _error(data["error"]) if data.get("error") else status
            return [Line(depth, "tool.error", " ".join(f"✗ task {agent} {status}  {took}  {detail}".split()))]
        return [Line(depth, "task", " ".join(f"↲ task {agent} done  {took}".split()))]

    def _on_compaction_start(self, event: Any, data: dict[str, Any]) -> list[Line]:
        key = f"compaction:{event.operation_id}"
        reason = data.get("reason", "threshold")
        self._activities[key] = Activity(f"compacting ({reason})", time.monotonic(), self._depth_of(event))
        return []

    def _on_compaction_end(self, event: Any, data: dict[str, Any]) -> list[Line]:
        self._activities.pop(f"compaction:{event.operation_id}", None)
        before, after = data.get("tokens_before"), data.get("tokens_after")
        counted = isinstance(before, int) and isinstance(after, int)
        tokens = f": {before:,} → {after:,} tokens" if counted else ""
        count = data.get("messages_summarised")
        messages = f", {count} messages summarised" if count is not None else ""
        reason = data.get("reason", "threshold")
        if data.get("error"):
            return [Line(self._depth_of(event), "error", f"⋯ compaction failed: {_error(data['error'])}")]
        return [Line(self._depth_of(event), "notice", f"⋯ context compacted ({reason}){tokens}{messages}")]

    def _on_abort(self, event: Any, data: dict[str, Any]) -> list[Line]:
        return [Line(self._depth_of(event), "error", f"■ aborted: {data.get('reason', '')}".rstrip(": "))]

    def _on_error(self, event: Any, data: dict[str, Any]) -> list[Line]:
        return [Line(self._depth_of(event), "error", f"✗ {_error(data.get('error') or data)}")]

    def _on_dispatch_accepted(self, event: Any, data: dict[str, Any]) -> list[Line]:
        return [Line(self._depth_of(event), "dim", f"dispatch accepted {data.get('dispatch_id', '')}")]

    def _on_dispatch_delivered(self, event: Any, data: dict[str, Any]) -> list[Line]:
        return [Line(self._depth_of(event), "dim", f"dispatch delivered {data.get('dispatch_id', '')}")]

    def _on_dispatch_failed(self, event: Any, data: dict[str, Any]) -> list[Line]:
        detail = _error(data["error"]) if data.get("error") else ""
        text = f"dispatch failed {data.get('dispatch_id', '')} {detail}"
        return [Line(self._depth_of(event), "error", text.rstrip())]

    def _custom(self, event: Any) -> list[Line]:
        return [Line(self._depth_of(event), "dim", f"• {event.type}  {_short(event.data, 100)}")]

    def _flush_text(self, op: str) -> list[Line]:
        rest = self._buffers.pop(op, "")
        return [Line(self._depth.get(op, 0), "text", rest)] if rest else []


def format_duration(ms: float | None) -> str:
    """``0.4 ms``, ``120 ms``, ``2.31 s``, ``1 m 05 s``: short, and precise where it matters."""
    if ms is None:
        return ""
    if ms < 1:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} m {seconds:02d} s"


def format_tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    given, produced = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    if not (given or produced):
        return ""
    calls = int(usage.get("requests") or 0)
    text = f"{given + produced:,} tokens ({given:,} in, {produced:,} out)"
    if calls:
        text += f" · {calls} model call{'s' if calls != 1 else ''}"
    return text


def _tool_key(event: Any, data: dict[str, Any]) -> str:
    """Call ids are unique within an operation only (the test model numbers them per turn)."""
    return f"tool:{event.operation_id}:{data.get('call_id')}"


def _error(error: Any) -> str:
    if isinstance(error, dict):
        kind, message = error.get("type", "Error"), error.get("message", "")
        return f"{kind}: {message}" if message else str(kind)
    return str(error)


def _short(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _args(args: Any) -> str:
    if isinstance(args, dict):
        return ", ".join(f"{k}={_short(v, 24)}" for k, v in args.items())
    return _short(args, 40)
