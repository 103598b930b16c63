"""Tool calls: ``tool_start`` .. ``tool_end`` as one ``execute_tool {tool}`` span under its operation.

Tool calls run concurrently and are siblings of the model calls (the model call has ended before its
tools run). Each is filed by (operation id, call id), so two calls of one tool never share a span. Its
duration goes to ``gen_ai.execute_tool.duration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .conventions import (
    AGENT_NAME,
    OPERATION_NAME,
    TOOL_CALL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_CALL_RESULT,
    TOOL_NAME,
    TOOL_TYPE,
)
from .values import call_id, ended, seconds, to_json

if TYPE_CHECKING:
    from ..events import Event
    from .metrics import Metrics
    from .spans import SpanTable
    from .values import Attributes


class ToolCallSpans:
    """Handles ``tool_start`` and ``tool_end``."""

    def __init__(self, spans: SpanTable, metrics: Metrics, capture_content: bool) -> None:
        self._spans = spans
        self._tools = spans.tool_calls
        self._metrics = metrics
        self._capture = capture_content

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"tool_start": self.start, "tool_end": self.end}

    def start(self, event: Event) -> None:
        data = event.data
        tool = str(data.get("tool") or "tool")
        call = call_id(data)
        attributes: Attributes = {OPERATION_NAME: "execute_tool", TOOL_NAME: tool, TOOL_TYPE: "function"}
        if call:
            attributes[TOOL_CALL_ID] = call
        metric_attrs: Attributes = {TOOL_NAME: tool, TOOL_TYPE: "function"}
        if event.agent is not None:
            attributes[AGENT_NAME] = metric_attrs[AGENT_NAME] = event.agent
        if self._capture and "args" in data:
            attributes[TOOL_CALL_ARGUMENTS] = to_json(data["args"])
        self._spans.start(
            self._tools,
            (event.operation_id, call),
            f"execute_tool {tool}",
            event,
            self._spans.operations.first(event.operation_id),
            attributes,
            metric_attrs=metric_attrs,
            histogram=self._metrics.tool_duration,
        )

    def end(self, event: Event) -> None:
        data = event.data
        node = self._tools.first((event.operation_id, call_id(data)))
        if node is None:
            return
        if data.get("error") is None and self._capture and "result" in data:
            result = data["result"]
            node.span.set_attribute(TOOL_CALL_RESULT, result if isinstance(result, str) else to_json(result))
        error_type, description = ended(data)
        self._spans.end(node, event.timestamp, error_type, description, seconds=seconds(data))
