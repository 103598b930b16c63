"""Model calls: ``model_start`` .. ``model_end`` as one ``chat {model}`` CLIENT span, with the streamed
text and reasoning (``text_delta`` / ``thinking_delta``) as its output when content is captured.

A model call belongs to the compaction running in its operation, else to the operation, whose span
learns its provider and model at the first call (the model may be chosen per prompt). Each call's
tokens go to ``gen_ai.client.token.usage`` and its duration to ``gen_ai.client.operation.duration``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .conventions import (
    CONVERSATION_ID,
    FINISH_REASONS,
    OPERATION_NAME,
    OUTPUT_MESSAGES,
    PROVIDER_NAME,
    REQUEST_MODEL,
    REQUEST_SETTINGS,
    RESPONSE_ID,
    RESPONSE_MODEL,
    STOP_SEQUENCES,
)
from .values import ended, seconds, to_json, usage_attributes

if TYPE_CHECKING:
    from ..events import Event
    from .metrics import Metrics
    from .spans import SpanTable
    from .values import Attributes


class ModelCallSpans:
    """Handles ``model_start`` and ``model_end``; and the deltas, when content is captured (else
    they are not routed here at all: one per streamed chunk, they are the observer's hot path)."""

    def __init__(self, spans: SpanTable, metrics: Metrics, capture_content: bool) -> None:
        self._spans = spans
        self._chats = spans.model_calls
        self._metrics = metrics
        self._capture = capture_content

    def routes(self) -> Mapping[str, Callable[[Event], None]]:
        routes: dict[str, Callable[[Event], None]] = {"model_start": self.start, "model_end": self.end}
        if self._capture:
            routes["text_delta"] = routes["thinking_delta"] = self.delta
        return routes

    def start(self, event: Event) -> None:
        data = event.data
        spans = self._spans
        provider = str(data.get("provider") or "unknown")
        model = data.get("model")
        op = spans.operations.first(event.operation_id)
        parent = spans.compactions.first(event.operation_id) or op
        attributes: Attributes = {OPERATION_NAME: "chat", PROVIDER_NAME: provider}
        if model:
            attributes[REQUEST_MODEL] = str(model)
        if op is not None:
            op.span.set_attribute(PROVIDER_NAME, provider)
            if model:
                op.span.set_attribute(REQUEST_MODEL, str(model))
        if event.session_id is not None:
            attributes[CONVERSATION_ID] = event.session_id
        settings = data.get("settings")
        if isinstance(settings, Mapping):
            for key, name, integer in REQUEST_SETTINGS:
                value = settings.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    if isinstance(value, int) or not integer:
                        attributes[name] = value
            stop = settings.get("stop")
            if isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
                attributes[STOP_SEQUENCES] = list(stop)
        metric_attrs: Attributes = {OPERATION_NAME: "chat", PROVIDER_NAME: provider}
        if model:
            metric_attrs[REQUEST_MODEL] = str(model)
        node = spans.start(
            self._chats,
            event.operation_id,
            f"chat {model}" if model else "chat",
            event,
            parent,
            attributes,
            client=True,
            metric_attrs=metric_attrs,
            histogram=self._metrics.client_duration,
        )
        if self._capture:
            node.text = []

    def delta(self, event: Event) -> None:
        node = self._chats.first(event.operation_id)
        if node is None or node.text is None:
            return
        kind = "text" if event.type == "text_delta" else "reasoning"
        text = str(event.data.get("text") or "")
        if node.text and node.text[-1]["type"] == kind:
            node.text[-1]["content"] += text
        else:
            node.text.append({"type": kind, "content": text})

    def end(self, event: Event) -> None:
        node = self._chats.first(event.operation_id)
        if node is None:
            return
        data = event.data
        span = node.span
        if data.get("error") is None:
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
                for key, value in usage_attributes(usage).items():
                    span.set_attribute(key, value)
                self._metrics.record_tokens(node.attrs, usage)
            if node.text:  # a response of tool calls only has no parts here: see its execute_tool spans
                message: dict[str, Any] = {"role": "assistant", "parts": node.text}
                if finish:
                    message["finish_reason"] = str(finish)
                span.set_attribute(OUTPUT_MESSAGES, to_json([message]))
            op = self._spans.operations.first(event.operation_id)
            if op is not None and finish:
                op.finish = str(finish)
        error_type, description = ended(data)
        self._spans.end(node, event.timestamp, error_type, description, seconds=seconds(data))
