"""The summary: how older messages become one summary message, and reading one back.

The summary is the first message of a compacted history (a user message wrapped in
``<conversation_summary>``); the next compaction *updates* it with the messages after it, so a
summary is never a summary of summaries. A transcript too long for one call is summarised in pieces,
each updating the summary of the pieces before it. Summarising calls are model calls of the
operation (reported through its ``emit``), never streamed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ModelError
from ..model_calls import Emit, call_model
from ..models.base import Model, ModelRequest, ModelSettings, Usage
from ..models.limits import model_limits
from ..models.messages import (
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    dumps,
)
from ..stores.sessions import StoredMessage
from .estimate import estimate_text
from .settings import CompactionSettings

__all__ = ["summarise", "summary_message", "summary_of"]

_OPEN = "<conversation_summary>\n"
_CLOSE = "\n</conversation_summary>"
_NOTE = (
    "\n\nThe conversation before this point was compacted into the summary above; "
    "the messages after it are verbatim."
)


def summary_message(summary: str) -> UserMessage:
    return UserMessage([TextPart(f"{_OPEN}{summary.strip()}{_CLOSE}{_NOTE}")])


def summary_of(message: StoredMessage) -> str | None:
    """The summary text when ``message`` is a compaction summary, else ``None``."""
    if not isinstance(message, UserMessage) or len(message.parts) != 1:
        return None
    part = message.parts[0]
    if not isinstance(part, TextPart) or not part.text.startswith(_OPEN):
        return None
    end = part.text.rfind(_CLOSE)
    return part.text[len(_OPEN) : end] if end >= len(_OPEN) else None


_SYSTEM = (
    "You write context checkpoints: a summary of a conversation between a user and an AI agent that lets "
    "another model continue the work without the original messages. Do not continue the conversation, do "
    "not answer questions asked in it and do not call tools: output only the summary."
)
_FORMAT = """Use this format, with short bullet points:

## Goal
## Constraints and preferences
## Progress
### Done
### In progress
## Key decisions
## Next steps
## Critical context
(exact names, identifiers, file paths, numbers, error messages and tool results that are still needed)

Keep exact values exact; drop what no longer matters."""
_NEW = "Summarise the conversation in <conversation> as a checkpoint another model will continue from."
_UPDATE = (
    "<previous_summary> covers the conversation up to the messages in <conversation>, which came after "
    "it. Update the summary: keep everything in it that still matters, add the new progress, decisions "
    "and context, move finished work to Done and refresh the next steps."
)
_RESULT_CHARS = 2_000  # tool results and thinking are cut to this in the transcript
_SUMMARY_MAX_TOKENS = 8_192
_PROMPT = _SYSTEM + _UPDATE + _FORMAT
_FRAMING_TOKENS = 64  # tags and message framing around the transcript
_MIN_CHUNK_CHARS = 4_000


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters cut]"


def _transcript(message: StoredMessage) -> str:
    """A message as plain text, so the summariser reads a transcript instead of continuing a chat."""
    lines: list[str] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                who = "User" if isinstance(message, UserMessage) else "Assistant"
                lines.append(f"[{who}]: {part.text}")
        elif isinstance(part, ImagePart):
            lines.append("[User]: (an image)")
        elif isinstance(part, ToolResultPart):
            label = "tool error" if part.is_error else "tool result"
            lines.append(f"[{label} {part.name}]: {_clip(part.content, _RESULT_CHARS)}")
        elif isinstance(part, ToolCallPart):
            lines.append(f"[Assistant called {part.name}]: {_clip(dumps(part.args), _RESULT_CHARS)}")
        elif isinstance(part, ThinkingPart) and part.text:
            lines.append(f"[Assistant thinking]: {_clip(part.text, _RESULT_CHARS)}")
    return "\n".join(lines)


def _chunks(messages: Sequence[StoredMessage], budget_chars: int) -> list[str]:
    """The transcript in pieces of at most ``budget_chars`` (a message larger than that is cut)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for message in messages:
        text = _clip(_transcript(message), budget_chars)
        if not text:
            continue
        if current and size + len(text) + 2 > budget_chars:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(text)
        size += len(text) + 2
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _summary_request(
    previous: str | None, transcript: str, instructions: list[str], max_tokens: int
) -> ModelRequest:
    parts: list[str] = []
    if previous:
        parts.append(f"<previous_summary>\n{previous}\n</previous_summary>")
    parts.append(f"<conversation>\n{transcript}\n</conversation>")
    parts.append(_UPDATE if previous else _NEW)
    parts.append(_FORMAT)
    for extra in instructions:
        parts.append(f"Additional instructions: {extra}")
    settings: ModelSettings = {"max_tokens": max_tokens}
    return ModelRequest([UserMessage([TextPart("\n\n".join(parts))])], _SYSTEM, [], settings)


async def summarise(
    model: Model,
    settings: CompactionSettings,
    previous: str | None,
    messages: Sequence[StoredMessage],
    instructions: list[str],
    emit: Emit,
) -> tuple[str, Usage]:
    """The updated summary and what producing it cost. A transcript too long for one call is
    summarised in pieces, each updating the summary of the pieces before it."""
    max_tokens = max(256, min(settings.reserve, _SUMMARY_MAX_TOKENS))
    window = (
        settings.context_window
        if settings.summariser is None
        else model_limits(model.model_name).context_window
    )
    # Room per call: the window less the answer, the summariser's own prompt and the summary so far
    # (known for the first call; later pieces update a summary of at most one answer's length).
    room = window - max_tokens - estimate_text(_PROMPT + " ".join(instructions)) - _FRAMING_TOKENS
    chunks = _chunks(messages, max(_MIN_CHUNK_CHARS, (room - estimate_text(previous or "")) * 4))
    if len(chunks) > 1:
        chunks = _chunks(messages, max(_MIN_CHUNK_CHARS, (room - max_tokens) * 4))
    usage = Usage()
    summary = previous
    for chunk in chunks:
        response = await call_model(
            model, _summary_request(summary, chunk, instructions, max_tokens), emit, stream=False
        )
        usage = usage + response.usage
        text = response.text.strip()
        if not text:
            raise ModelError(
                f"compaction failed: the summariser answered with no text "
                f"(finish reason {response.finish_reason!r})",
                provider=model.provider,
            )
        summary = text
    if summary is None:  # nothing but empty messages: say so rather than call the model for nothing
        summary = "(nothing of note)"
    return summary, usage
