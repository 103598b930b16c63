"""Compaction: ``compaction_start`` .. ``compaction_end`` as one ``compaction {agent}`` span (the
conventions name no such operation) under its operation, else its run; the summarisation's model call
nests under it.

Filed by operation id; a compaction outside any operation by its run, agent, instance and session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .conventions import AGENT_NAME, CONVERSATION_ID
from .values import ended, set_int

if TYPE_CHECKING:
    from ..events import Event
    from .spans import SpanTable
    from .values import Attributes


class CompactionSpans:
    """Handles ``compaction_start`` and ``compaction_end``."""

    def __init__(self, spans: SpanTable) -> None:
        self._spans = spans
        self._compactions = spans.compactions

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"compaction_start": self.start, "compaction_end": self.end}

    def start(self, event: Event) -> None:
        data = event.data
        attributes: Attributes = {}
        if event.agent is not None:
            attributes[AGENT_NAME] = event.agent
        if event.session_id is not None:
            attributes[CONVERSATION_ID] = event.session_id
        if event.operation_id is not None:
            attributes["pyflue.operation_id"] = event.operation_id
        if data.get("reason"):
            attributes["pyflue.compaction.reason"] = str(data["reason"])
        set_int(attributes, "pyflue.compaction.tokens_before", data.get("tokens_before"))
        self._spans.start(
            self._compactions,
            _key(event),
            f"compaction {event.agent}" if event.agent else "compaction",
            event,
            self._spans.scope_of(event),
            attributes,
        )

    def end(self, event: Event) -> None:
        node = self._compactions.first(_key(event))
        if node is None:
            return
        data = event.data
        values: Attributes = {}
        set_int(values, "pyflue.compaction.tokens_before", data.get("tokens_before"))
        set_int(values, "pyflue.compaction.tokens_after", data.get("tokens_after"))
        set_int(values, "pyflue.compaction.messages_summarised", data.get("messages_summarised"))
        if data.get("reason"):
            values["pyflue.compaction.reason"] = str(data["reason"])
        for key, value in values.items():
            node.span.set_attribute(key, value)
        error_type, description = ended(data)
        self._spans.end(node, event.timestamp, error_type, description)


def _key(event: Event) -> Any:
    return event.operation_id or ("session", event.run_id, event.agent, event.instance_id, event.session_id)
