"""Operations (a prompt, task, compact or dispatch delivery on a session): ``operation_start`` ..
``operation_end`` as one ``invoke_agent {agent}`` span.

Its parent is, in order: the tool call that started it (a task), the operation named by its
``parent_id`` (a task), its run, the active span. A task's span is named after the subagent's profile;
the envelope's ``agent`` names the agent whose instance runs it. Its duration goes to
``gen_ai.invoke_agent.duration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .conventions import (
    AGENT_ID,
    AGENT_NAME,
    CONVERSATION_ID,
    INPUT_MESSAGES,
    OPERATION_NAME,
    OUTPUT_MESSAGES,
)
from .values import message_parts, outcome, seconds, to_json, usage_attributes

if TYPE_CHECKING:
    from ..events import Event
    from .metrics import Metrics
    from .spans import SpanNode, SpanTable
    from .tasks import TaskLinks
    from .values import Attributes


class OperationSpans:
    """Handles ``operation_start`` and ``operation_end``."""

    def __init__(self, spans: SpanTable, metrics: Metrics, capture_content: bool, tasks: TaskLinks) -> None:
        self._spans = spans
        self._ops = spans.operations
        self._metrics = metrics
        self._capture = capture_content
        self._tasks = tasks

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"operation_start": self.start, "operation_end": self.end}

    def start(self, event: Event) -> None:
        data = event.data
        spans = self._spans
        task = self._tasks.claim(event.operation_id)
        agent = (task.agent if task is not None else None) or event.agent or "agent"
        parent: SpanNode | None = None
        parent_op = event.parent_id or (task.parent_op if task else None)
        if task is not None and task.call_id is not None:
            parent = spans.tool_calls.first((task.parent_op, task.call_id))
        if parent is None and parent_op is not None:
            parent = self._ops.first(parent_op)
        if parent is None and event.run_id is not None:
            parent = spans.runs.first(event.run_id)
        attributes: Attributes = {OPERATION_NAME: "invoke_agent", AGENT_NAME: agent}
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
        if self._capture and "input" in data:
            attributes[INPUT_MESSAGES] = to_json([{"role": "user", "parts": message_parts(data["input"])}])
        spans.start(
            self._ops,
            event.operation_id,
            f"invoke_agent {agent}",
            event,
            parent,
            attributes,
            metric_attrs={AGENT_NAME: agent},
            histogram=self._metrics.agent_duration,
        )

    def end(self, event: Event) -> None:
        node = self._ops.first(event.operation_id)
        if node is None:
            return
        data = event.data
        status = str(data.get("status") or "completed")
        span = node.span
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            for key, value in usage_attributes(usage).items():
                span.set_attribute(key, value)
        if self._capture and data.get("text") is not None:
            message: dict[str, Any] = {
                "role": "assistant",
                "parts": [{"type": "text", "content": str(data["text"])}],
            }
            if node.finish:
                message["finish_reason"] = node.finish
            span.set_attribute(OUTPUT_MESSAGES, to_json([message]))
        error_type, description = outcome(status, data.get("error"))
        self._spans.end(node, event.timestamp, error_type, description, status, seconds(data))
