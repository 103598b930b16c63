"""Events that are moments, not intervals: ``log``, ``abort``, ``error`` and custom events
(``ctx.emit``) become span events on their operation's span, else their run's.

A log line with neither goes on the span active in the emitting task; an abort also sets
``pyflue.abort.reason`` on its span; a custom event carries its data only when content is captured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .conventions import ERROR_TYPE
from .values import attribute, error_type, ns, to_json

if TYPE_CHECKING:
    from ..events import Event
    from .spans import SpanTable
    from .values import Attributes


class SpanEvents:
    """Handles ``log``, ``abort`` and ``error``; :meth:`custom` takes every type outside the catalogue."""

    def __init__(self, spans: SpanTable, capture_content: bool) -> None:
        self._spans = spans
        self._capture = capture_content

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        return {"log": self.log, "abort": self.abort, "error": self.error}

    def log(self, event: Event) -> None:
        data = event.data
        attributes: Attributes = {
            "log.level": str(data.get("level") or "info"),
            "log.message": str(data.get("message") or ""),
        }
        fields = data.get("fields")
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                attributes[f"pyflue.log.{key}"] = attribute(value)
        node = self._spans.scope_of(event)
        span = node.span if node is not None else self._spans.current_span()
        if span.is_recording():
            span.add_event("log", attributes, timestamp=ns(event.timestamp))

    def abort(self, event: Event) -> None:
        node = self._spans.scope_of(event)
        if node is not None:
            reason = str(event.data.get("reason") or "aborted")
            node.span.set_attribute("pyflue.abort.reason", reason)
            node.span.add_event("pyflue.abort", {"reason": reason}, timestamp=ns(event.timestamp))

    def error(self, event: Event) -> None:
        node = self._spans.scope_of(event)
        if node is None:
            return
        error = event.data.get("error")
        attributes: Attributes = {ERROR_TYPE: error_type(error)}
        if isinstance(error, Mapping) and error.get("message"):
            attributes["exception.message"] = str(error["message"])
        node.span.add_event("pyflue.error", attributes, timestamp=ns(event.timestamp))

    def custom(self, event: Event) -> None:
        node = self._spans.scope_of(event)
        if node is None:
            return
        attributes: Attributes = {}
        if self._capture:
            attributes["pyflue.event.data"] = to_json(event.data)
        node.span.add_event(event.type, attributes, timestamp=ns(event.timestamp))
