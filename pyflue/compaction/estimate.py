"""Token estimates: a message's size, and a prompt's size from what the provider last reported
plus an estimate of what was added since (kept on the session's history, see
:class:`~pyflue.history.SizeMarks`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..history import History
from ..models.base import ToolDefinition
from ..models.messages import ImagePart, TextPart, ThinkingPart, ToolCallPart, ToolResultPart, dumps
from ..stores.sessions import StoredMessage

__all__ = [
    "estimate_all",
    "estimate_overhead",
    "estimate_prompt",
    "estimate_text",
    "estimate_tokens",
    "record_usage",
]

_IMAGE_CHARS = 4_800  # about 1 200 tokens, what providers charge for a mid-sized image
_MESSAGE_OVERHEAD = 4  # role and framing tokens per message


def estimate_tokens(message: StoredMessage) -> int:
    """A message's size in tokens, estimated as characters / 4 (rounded up; conservative for
    English and code, which tokenise at 3.5-4.5 characters per token)."""
    chars = 0
    for part in message.parts:
        if isinstance(part, TextPart):
            chars += len(part.text)
        elif isinstance(part, ToolResultPart):
            chars += len(part.content) + len(part.name) + 16
        elif isinstance(part, ToolCallPart):
            chars += len(part.name) + len(dumps(part.args)) + 16
        elif isinstance(part, ThinkingPart):
            chars += len(part.text) + len(part.redacted or "")
        elif isinstance(part, ImagePart):
            chars += _IMAGE_CHARS
    return math.ceil(chars / 4) + _MESSAGE_OVERHEAD


def tool_chars(tools: Sequence[ToolDefinition]) -> int:
    """The characters tool definitions add to every request (computed once per agent instance)."""
    return sum(len(t.name) + len(t.description) + len(dumps(t.parameters)) for t in tools)


def estimate_overhead(instructions: str | None, tools_chars: int) -> int:
    """What every request carries besides the messages: instructions and tool definitions."""
    return math.ceil((len(instructions or "") + tools_chars) / 4)


def estimate_text(text: str) -> int:
    return math.ceil(len(text) / 4)


def estimate_all(messages: Sequence[StoredMessage], overhead: int) -> int:
    return overhead + sum(estimate_tokens(m) for m in messages)


def estimate_prompt(history: History, messages: Sequence[StoredMessage], overhead: int) -> int:
    """The prompt's size: the provider's count for the last call plus an estimate of the messages
    added since; without a reported call, our own estimate (incremental, so a model that reports
    no usage does not make every call re-estimate the whole history)."""
    reported = history.marks.reported
    if reported is not None:
        first, count, tokens = reported
        if len(messages) > count and messages and messages[0] is first:
            return tokens + sum(estimate_tokens(m) for m in messages[count + 1 :])
    return overhead + _estimate_messages(history, messages)


def _estimate_messages(history: History, messages: Sequence[StoredMessage]) -> int:
    if not messages:
        return 0
    done = history.marks.estimated
    if done is not None:
        first, last, count, tokens = done
        if len(messages) >= count and messages[0] is first and messages[count - 1] is last:
            tokens += sum(estimate_tokens(m) for m in messages[count:])
        else:
            tokens = sum(estimate_tokens(m) for m in messages)
    else:
        tokens = sum(estimate_tokens(m) for m in messages)
    history.marks.estimated = (messages[0], messages[-1], len(messages), tokens)
    return tokens


def record_usage(history: History, count: int, input_tokens: int, output_tokens: int) -> None:
    """Remember the provider's count for a request of ``count`` messages of ``history``."""
    if input_tokens <= 0 or not len(history) or count > len(history):
        return
    history.marks.reported = (history[0], count, input_tokens + output_tokens)


def forget_usage(history: History) -> None:
    history.marks.reported = None
