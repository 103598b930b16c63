"""The GenAI metrics: one histogram per measured thing, made only from an explicit meter provider.

Never the global meter provider, so adding tracing does not silently add metric cardinality. Without a
provider every histogram here is ``None`` and the family handlers record nothing. Durations are
recorded by the span table when a span ends (see :class:`pyflue.observability.spans.SpanTable`); tokens
by the model-call handler through :meth:`Metrics.record_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .conventions import AGENT_BUCKETS, CLIENT_BUCKETS, TOKEN_BUCKETS, TOKEN_TYPE, WORKFLOW_BUCKETS

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider

    from .values import Attributes


class Metrics:
    """The histograms of one observer (``None`` each without a meter provider)."""

    __slots__ = ("agent_duration", "client_duration", "token_usage", "tool_duration", "workflow_duration")

    def __init__(self, meter_provider: MeterProvider | None, version: str) -> None:
        self.token_usage: Histogram | None = None
        self.client_duration: Histogram | None = None
        self.agent_duration: Histogram | None = None
        self.tool_duration: Histogram | None = None
        self.workflow_duration: Histogram | None = None
        if meter_provider is None:
            return
        meter = meter_provider.get_meter("pyflue", version)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.client_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            "s",
            "GenAI operation duration.",
            explicit_bucket_boundaries_advisory=CLIENT_BUCKETS,
        )
        self.agent_duration = meter.create_histogram(
            "gen_ai.invoke_agent.duration",
            "s",
            "The end-to-end duration of a single agent invocation.",
            explicit_bucket_boundaries_advisory=AGENT_BUCKETS,
        )
        self.tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            "s",
            "The duration of a single tool execution.",
            explicit_bucket_boundaries_advisory=CLIENT_BUCKETS,
        )
        self.workflow_duration = meter.create_histogram(
            "gen_ai.workflow.duration",
            "s",
            "GenAI workflow duration.",
            explicit_bucket_boundaries_advisory=WORKFLOW_BUCKETS,
        )

    def record_tokens(self, attrs: Attributes, usage: Mapping[str, Any]) -> None:
        """A model call's input and output tokens, each with its ``gen_ai.token.type``."""
        if self.token_usage is None:
            return
        for token_type, key in (("input", "input_tokens"), ("output", "output_tokens")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self.token_usage.record(value, {**attrs, TOKEN_TYPE: token_type})
