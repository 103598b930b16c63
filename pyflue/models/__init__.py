"""The model layer: typed messages, the :class:`Model` protocol, providers over httpx, offline models.

Providers (``anthropic``, ``openai``) import lazily through :func:`resolve_model`.
"""

from .base import (
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OutputSchema,
    ResponseBuilder,
    StreamEvent,
    StreamFinish,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolDefinition,
    Usage,
    UsageUpdate,
)
from .messages import (
    AssistantMessage,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
)
from .registry import register_provider, resolve_model

__all__ = [
    "AssistantMessage",
    "ImagePart",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OutputSchema",
    "ResponseBuilder",
    "StreamEvent",
    "StreamFinish",
    "TextDelta",
    "TextPart",
    "ThinkingDelta",
    "ThinkingPart",
    "ToolCallArgsDelta",
    "ToolCallEnd",
    "ToolCallPart",
    "ToolCallStart",
    "ToolDefinition",
    "ToolResultPart",
    "Usage",
    "UsageUpdate",
    "UserMessage",
    "register_provider",
    "resolve_model",
]
