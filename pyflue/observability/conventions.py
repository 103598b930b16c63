"""The names this observer writes: OpenTelemetry GenAI semantic-convention attributes, the model
settings it maps to request attributes, and the histogram bucket boundaries the conventions advise.

The conventions are still "Development" and their names move; keeping every name here means a rename
is a change to this module alone. ``pyflue.*`` attributes carry what the conventions have no name for
and are spelled where they are set.
"""

from __future__ import annotations

from typing import Final

OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_ID: Final = "gen_ai.agent.id"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"

#: ``error.type`` (and status) of a span ended because its end event can no longer come.
INTERRUPTED: Final = "interrupted"

#: ModelSettings keys → request attributes (others have no convention and are not recorded).
REQUEST_SETTINGS: Final[tuple[tuple[str, str, bool], ...]] = (  # (key, attribute, integer only)
    ("max_tokens", "gen_ai.request.max_tokens", True),
    ("temperature", "gen_ai.request.temperature", False),
    ("top_p", "gen_ai.request.top_p", False),
    ("top_k", "gen_ai.request.top_k", False),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", False),
    ("presence_penalty", "gen_ai.request.presence_penalty", False),
    ("seed", "gen_ai.request.seed", True),
)
STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"

# Explicit bucket boundaries the conventions advise for each histogram.
TOKEN_BUCKETS: Final = tuple(4.0**i for i in range(14))  # 1, 4, 16, ... 67108864
CLIENT_BUCKETS: Final = tuple(0.01 * 2**i for i in range(14))  # 0.01 ... 81.92 s
AGENT_BUCKETS: Final = tuple(0.1 * 2**i for i in range(13))  # 0.1 ... 409.6 s
WORKFLOW_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
