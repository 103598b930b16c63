"""Workflow runs: ``run_start`` .. ``run_end`` as one ``invoke_workflow {workflow}`` span.

A run's span is a root of our tree: its parent is the span active when the run starts (an HTTP server
or job span), if any. Its duration goes to ``gen_ai.workflow.duration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .conventions import OPERATION_NAME, WORKFLOW_NAME
from .values import outcome, seconds, to_json

if TYPE_CHECKING:
    from ..events import Event
    from .metrics import Metrics
    from .spans import SpanTable
    from .values import Attributes


class RunSpans:
    """Handles ``run_start`` and ``run_end``."""

    def __init__(self, spans: SpanTable, metrics: Metrics, capture_content: bool) -> None:
        self._spans = spans
        self._runs = spans.runs
        self._metrics = metrics
        self._capture = capture_content

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"run_start": self.start, "run_end": self.end}

    def start(self, event: Event) -> None:
        data = event.data
        workflow = str(data.get("workflow") or "workflow")
        attributes: Attributes = {OPERATION_NAME: "invoke_workflow", WORKFLOW_NAME: workflow}
        if event.run_id is not None:
            attributes["pyflue.run_id"] = event.run_id
        if self._capture and "payload" in data:
            attributes["pyflue.run.payload"] = to_json(data["payload"])
        self._spans.start(
            self._runs,
            event.run_id,
            f"invoke_workflow {workflow}",
            event,
            None,
            attributes,
            metric_attrs={WORKFLOW_NAME: workflow},
            histogram=self._metrics.workflow_duration,
        )

    def end(self, event: Event) -> None:
        node = self._runs.first(event.run_id)
        if node is None:
            return
        data = event.data
        status = str(data.get("status") or "completed")
        error_type, description = outcome(status, data.get("error"))
        if self._capture and "result" in data:
            node.span.set_attribute("pyflue.run.result", to_json(data["result"]))
        self._spans.end(node, event.timestamp, error_type, description, status, seconds(data))
