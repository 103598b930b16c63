"""Subagent tasks: ``task_start`` announces an operation that has not started yet.

A task has no span of its own: its operation's ``invoke_agent`` span is the task. This handler keeps
each announcement (the parent operation, the tool call that started it, the subagent's profile name)
until :class:`~pyflue.observability.operations.OperationSpans` claims it at the task's
``operation_start``; a task that fails before its operation starts is told on the parent's span.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .conventions import AGENT_NAME, ERROR_TYPE
from .values import call_id, error_type, ns

if TYPE_CHECKING:
    from ..events import Event
    from .spans import SpanTable


class PendingTask:
    """A task announced by ``task_start`` whose operation has not started yet."""

    __slots__ = ("agent", "call_id", "parent_op")

    def __init__(self, parent_op: str | None, call_id: str | None, agent: str | None) -> None:
        self.parent_op = parent_op
        self.call_id = call_id
        self.agent = agent


class TaskLinks:
    """Handles ``task_start`` and ``task_end``; owns the announced, not yet started tasks."""

    def __init__(self, spans: SpanTable) -> None:
        self._spans = spans
        self._pending: dict[str, PendingTask] = {}  # by the task's operation id

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"task_start": self.start, "task_end": self.end}

    def claim(self, operation_id: str | None) -> PendingTask | None:
        """The announcement of the task whose operation ``operation_id`` is, once."""
        return self._pending.pop(operation_id, None) if operation_id is not None else None

    def start(self, event: Event) -> None:
        data = event.data
        task_op = data.get("task_operation_id")
        if not task_op:
            return
        call = call_id(data)
        if call is None:
            # Started from a tool (the model's ``task`` tool, or ctx.session.task): task_start is
            # emitted in that tool's task, where our execute_tool span is current. Accept it only if
            # it is a tool call of the task's parent operation.
            current = self._spans.current_span()
            for (op, tool_call), nodes in self._spans.tool_calls.items():
                if op == event.operation_id and any(node.span is current for node in nodes):
                    call = tool_call
                    break
        agent = data.get("agent")
        self._pending[str(task_op)] = PendingTask(event.operation_id, call, str(agent) if agent else None)

    def end(self, event: Event) -> None:
        task_op = event.data.get("task_operation_id")
        pending = self._pending.pop(str(task_op), None) if task_op else None
        error = event.data.get("error")
        if pending is None or error is None:
            return
        # The child operation never started, so no span says why the task failed: the parent does.
        node = self._spans.scope_of(event)
        if node is not None:
            node.span.add_event(
                "pyflue.task_failed",
                {
                    AGENT_NAME: str(event.data.get("agent") or ""),
                    ERROR_TYPE: error_type(error),
                    "pyflue.task_operation_id": str(task_op),
                },
                timestamp=ns(event.timestamp),
            )
