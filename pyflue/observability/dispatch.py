"""Durable dispatch: a delivery attempt is one ``deliver_dispatch {agent}`` span.

``dispatch_started`` opens it (parent: the span current in the delivering task, which is the
dispatching caller's when the item carried a ``traceparent``), and ``dispatch_delivered``,
``dispatch_failed`` or ``dispatch_cancelled`` end it with that status. The delivery's operation
(``invoke_agent``) starts in the same task while the span is current, so it nests under it.
``dispatch_accepted`` is a span event of whatever span is current where input was accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .conventions import AGENT_NAME, OPERATION_NAME
from .values import outcome

if TYPE_CHECKING:
    from ..events import Event
    from .spans import SpanTable
    from .values import Attributes

_ENDS = {"dispatch_delivered": "completed", "dispatch_failed": "failed", "dispatch_cancelled": "cancelled"}


class DispatchSpans:
    """Handles the ``dispatch_*`` events; owns the table's ``dispatch`` family."""

    def __init__(self, spans: SpanTable) -> None:
        self._spans = spans
        self._deliveries = spans.add("dispatch", records_status=True)

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {
            "dispatch_accepted": self.accepted,
            "dispatch_started": self.start,
            **dict.fromkeys(_ENDS, self.end),
        }

    def accepted(self, event: Event) -> None:
        span = self._spans.current_span()
        if span.is_recording():
            span.add_event("dispatch_accepted", {"pyflue.dispatch_id": str(event.data.get("dispatch_id"))})

    def start(self, event: Event) -> None:
        data = event.data
        agent = event.agent or "agent"
        attributes: Attributes = {
            OPERATION_NAME: "deliver_dispatch",
            AGENT_NAME: agent,
            "pyflue.dispatch_id": str(data.get("dispatch_id")),
            "pyflue.dispatch.attempt": int(data.get("attempt") or 0),
        }
        if event.instance_id is not None:
            attributes["pyflue.instance_id"] = event.instance_id
        if event.session_id is not None:
            attributes["pyflue.session_id"] = event.session_id
        self._spans.start(
            self._deliveries, data.get("dispatch_id"), f"deliver_dispatch {agent}", event, None, attributes
        )

    def end(self, event: Event) -> None:
        node = self._deliveries.first(event.data.get("dispatch_id"))
        if node is None:
            return
        status = _ENDS[event.type]
        error_type, description = outcome(status, event.data.get("error"))
        self._spans.end(node, event.timestamp, error_type, description, status)
