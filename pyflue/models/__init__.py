"""The model layer: typed messages, the :class:`Model` protocol, providers over httpx, offline models.

Providers (``anthropic``, ``openai``) import lazily through :func:`resolve_model`. Their HTTP clients
live in a :class:`ClientPool`, activated with :func:`use_pool` (see :mod:`pyflue.models.clients`); those
names resolve lazily (PEP 562), so importing the model layer does not import httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import (
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OutputMode,
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
from .limits import ModelLimits, model_limits
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

if TYPE_CHECKING:
    from .clients import ClientPool, current_pool, use_pool

_LAZY = {
    "ClientPool": "pyflue.models.clients",
    "current_pool": "pyflue.models.clients",
    "use_pool": "pyflue.models.clients",
}

__all__ = [
    "AssistantMessage",
    "ClientPool",
    "ImagePart",
    "Message",
    "Model",
    "ModelLimits",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OutputMode",
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
    "current_pool",
    "model_limits",
    "register_provider",
    "resolve_model",
    "use_pool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyflue.models' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
