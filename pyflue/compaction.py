"""Compaction: keep a long session inside its model's context window.

Before each model call the turn loop asks the :class:`Compactor` (``harness.compactor()``) whether
the prompt still fits. The prompt's size is the provider-reported tokens of the session's last call
(input + output) plus a chars/4 estimate of what was added since; without a reported call, the whole
prompt is estimated. Above ``context_window - reserve`` the older messages are summarised by a model
into one summary message, the most recent ``keep_recent_tokens`` stay verbatim, the compacted history
replaces the stored one atomically (``SessionStore.replace``) and the request goes on with it.

Invariants:

- A tool call and its result are never separated: the cut is placed only where every call before it
  has its result before it too (:func:`find_cut`).
- The summary is the first message of the compacted history (a user message wrapped in
  ``<conversation_summary>``). The next compaction *updates* it with the messages that came after it
  (the summariser gets ``<previous_summary>`` plus only the new messages), so a summary is never a
  summary of summaries of summaries.
- A provider ``ContextOverflowError`` (our estimate was wrong) compacts hard, keeping only the newest
  messages verbatim, and the loop retries once. When nothing older can be summarised (one huge
  message) the operation fails with a ``ContextOverflowError`` that says so; it never loops.
- The summarisation call is a model call of the operation: it emits ``model_start`` / ``model_end``
  between ``compaction_start`` and ``compaction_end`` and its usage counts in the operation's usage.
  It is not streamed, so no summary text reaches a stream as if the agent had said it.

``session.compact(keep_recent=..., instructions=...)`` compacts on demand (:func:`compact_session`).
See docs/compaction.md.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError, ContextOverflowError, ModelError, error_payload
from .events import Event
from .models.base import Model, ModelRequest, ModelResponse, ModelSettings, ToolDefinition, Usage
from .models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    dumps,
)

if TYPE_CHECKING:
    from .agent import AgentHarness
    from .loop import Turns
    from .session import Session

__all__ = [
    "CompactionConfig",
    "CompactionResult",
    "CompactionSettings",
    "Compactor",
    "compact_session",
    "estimate_tokens",
    "find_cut",
    "model_limits",
    "summary_of",
]

StoredMessage = UserMessage | AssistantMessage
Emit = Callable[[str, dict[str, Any]], Event | None]
Reason = Literal["threshold", "overflow", "manual"]


class CompactionConfig(BaseModel):
    """When and how a long session is summarised to fit the model's context window.

    ``None`` fields take the model's known defaults (:func:`model_limits`): ``context_window_tokens``
    from the model, ``reserve_tokens`` = min(20 000, the model's max output). ``keep_recent_tokens``
    of the newest messages stay verbatim. ``model`` summarises (default: the operation's model);
    ``instructions`` are added to the summariser's prompt (what to preserve). ``enabled=False`` turns
    automatic compaction off; ``session.compact()`` still works.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    enabled: bool = True
    context_window_tokens: int | None = Field(default=None, gt=0)
    reserve_tokens: int | None = Field(default=None, ge=0)
    keep_recent_tokens: int = Field(default=8_000, ge=0)
    model: str | Model | None = None
    instructions: str | None = None


# -- model limits ----------------------------------------------------------------------------------

# (name prefix, context window, max output tokens); the first match wins, so specific names go first.
_KNOWN_MODELS: tuple[tuple[str, int, int], ...] = (
    ("claude-opus-4", 200_000, 32_000),
    ("claude-sonnet-4", 200_000, 64_000),
    ("claude-haiku-4", 200_000, 64_000),
    ("claude-3-7-sonnet", 200_000, 64_000),
    ("claude-3-5", 200_000, 8_192),
    ("claude-3", 200_000, 4_096),
    ("gpt-4.1", 1_047_576, 32_768),
    ("gpt-4o", 128_000, 16_384),
    ("gpt-5", 400_000, 128_000),
    ("o3", 200_000, 100_000),
    ("o4-mini", 200_000, 100_000),
)
# Unknown models (local ones included) get a window most serve; a provider overflow still compacts.
_DEFAULT_LIMITS = (32_768, 4_096)
_MAX_RESERVE = 20_000


@dataclass(frozen=True, slots=True)
class ModelLimits:
    context_window: int
    max_output: int


def model_limits(model_name: str) -> ModelLimits:
    """The known context window and maximum output of a model, by name prefix (a ``provider/`` prefix
    such as OpenRouter's ``anthropic/claude-sonnet-4`` is ignored); a conservative default otherwise."""
    name = model_name.lower().rsplit("/", 1)[-1]
    for prefix, window, output in _KNOWN_MODELS:
        if name.startswith(prefix):
            return ModelLimits(window, output)
    return ModelLimits(*_DEFAULT_LIMITS)


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """A :class:`CompactionConfig` resolved for one model: every number known."""

    context_window: int
    reserve: int
    keep_recent: int
    summariser: Model | None  # None: the operation's own model
    instructions: str | None

    @property
    def threshold(self) -> int:
        """Compact when the prompt is estimated above this many tokens."""
        return self.context_window - self.reserve

    @classmethod
    def resolve(
        cls, config: CompactionConfig | None, model: Model, env: Mapping[str, str] | None = None
    ) -> CompactionSettings:
        """Fill ``config``'s unset numbers from ``model``'s known limits; ``ConfigError`` when the
        reserve leaves no room."""
        config = config or CompactionConfig()
        limits = model_limits(model.model_name)
        window = config.context_window_tokens or limits.context_window
        reserve = (
            config.reserve_tokens
            if config.reserve_tokens is not None
            else min(_MAX_RESERVE, limits.max_output)
        )
        if reserve >= window:
            raise ConfigError(
                f"compaction: reserve_tokens ({reserve}) must be below context_window_tokens ({window})"
            )
        summariser: Model | None = None
        if config.model is not None:
            from .models.registry import resolve_model

            summariser = resolve_model(config.model, env)
        return cls(window, reserve, config.keep_recent_tokens, summariser, config.instructions)


# -- token estimates -------------------------------------------------------------------------------

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


def _estimate_overhead(instructions: str | None, tools: Sequence[ToolDefinition]) -> int:
    chars = len(instructions or "") + sum(_tool_chars(t) for t in tools)
    return math.ceil(chars / 4)


# Tool definitions are made once per tool (``Tool.definition``), so their sizes are computed once too
# instead of re-serialising every schema before every model call. Bounded: a miss is only a recount.
_tool_sizes: dict[int, tuple[ToolDefinition, int]] = {}


def _tool_chars(tool: ToolDefinition) -> int:
    known = _tool_sizes.get(id(tool))
    if known is not None and known[0] is tool:
        return known[1]
    chars = len(tool.name) + len(tool.description) + len(dumps(tool.parameters))
    if len(_tool_sizes) >= 4_096:
        _tool_sizes.clear()
    _tool_sizes[id(tool)] = (tool, chars)
    return chars


# Settings per (config, model, environment): resolved once, not before every model call.
_settings_cache: dict[tuple[int, int, str | None], tuple[object, object, CompactionSettings]] = {}


def _resolved(config: CompactionConfig | None, model: Model, env: Mapping[str, str]) -> CompactionSettings:
    key = (id(config), id(model), env.get("PYFLUE_MODEL"))
    known = _settings_cache.get(key)
    if known is not None and known[0] is config and known[1] is model:
        return known[2]
    settings = CompactionSettings.resolve(config, model, env)
    if len(_settings_cache) >= 1_024:
        _settings_cache.clear()
    _settings_cache[key] = (config, model, settings)
    return settings


def _estimate_text(text: str) -> int:
    return math.ceil(len(text) / 4)


def _estimate_all(messages: Sequence[StoredMessage], overhead: int) -> int:
    return overhead + sum(estimate_tokens(m) for m in messages)


@dataclass(slots=True)
class _Mark:
    """What the provider reported for a session's last call: ``tokens`` (input + output) cover the
    ``count`` messages of that request plus the answer after them."""

    first: StoredMessage
    count: int
    tokens: int


# The last call's reported size per stored session, so the first call of the next operation starts
# from real numbers too. Bounded: a forgotten mark only means a plain estimate.
_marks: OrderedDict[tuple[int, Any], _Mark] = OrderedDict()
_MAX_MARKS = 1_024


def _mark_key(session: Session) -> tuple[int, Any]:
    return (id(session.harness.store), session.key)


def _estimate_prompt(session: Session, messages: Sequence[StoredMessage], overhead: int) -> int:
    key = _mark_key(session)
    mark = _marks.get(key)
    if mark is not None and len(messages) > mark.count and messages and messages[0] is mark.first:
        return mark.tokens + sum(estimate_tokens(m) for m in messages[mark.count + 1 :])
    return overhead + _estimate_messages(key, messages)


@dataclass(slots=True)
class _Sum:
    """Our own estimate of a history's first ``count`` messages (``first`` and ``last`` identify them),
    so a model that reports no usage does not make every call re-estimate the whole history."""

    first: StoredMessage
    last: StoredMessage
    count: int
    tokens: int


_sums: OrderedDict[tuple[int, Any], _Sum] = OrderedDict()


def _estimate_messages(key: tuple[int, Any], messages: Sequence[StoredMessage]) -> int:
    if not messages:
        return 0
    done = _sums.get(key)
    if (
        done is not None
        and len(messages) >= done.count
        and messages[0] is done.first
        and messages[done.count - 1] is done.last
    ):
        tokens = done.tokens + sum(estimate_tokens(m) for m in messages[done.count :])
    else:
        tokens = sum(estimate_tokens(m) for m in messages)
    _sums[key] = _Sum(messages[0], messages[-1], len(messages), tokens)
    _sums.move_to_end(key)
    if len(_sums) > _MAX_MARKS:
        _sums.popitem(last=False)
    return tokens


def _forget_mark(session: Session) -> None:
    _marks.pop(_mark_key(session), None)


# -- the summary message ---------------------------------------------------------------------------

_OPEN = "<conversation_summary>\n"
_CLOSE = "\n</conversation_summary>"
_NOTE = (
    "\n\nThe conversation before this point was compacted into the summary above; "
    "the messages after it are verbatim."
)


def _summary_message(summary: str) -> UserMessage:
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


# -- where to cut ----------------------------------------------------------------------------------


def find_cut(messages: Sequence[StoredMessage], start: int, keep_recent: int, max_cut: int) -> int | None:
    """The index ``c`` (``start < c <= max_cut``) where the history is cut: ``messages[start:c]`` are
    summarised, ``messages[c:]`` stay verbatim. ``None`` when no cut is possible.

    A cut is valid only if no tool call before it has its result at or after it. When everything
    after ``start`` fits in ``keep_recent`` tokens there is nothing to do (``None``). Otherwise the
    valid cut keeping the most messages within ``keep_recent`` wins; when even the newest valid cut
    keeps more, that one (summarise as much as the pairs allow).
    """
    n = len(messages)
    max_cut = min(max_cut, n)
    if max_cut <= start:
        return None
    # blocked[c] > 0: some call sits before c and its result at or after c.
    delta = [0] * (n + 2)
    calls: dict[str, int] = {}
    for index, message in enumerate(messages):
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                calls[part.id] = index
            elif isinstance(part, ToolResultPart):
                at = calls.get(part.call_id)
                if at is not None and at < index:
                    delta[at + 1] += 1
                    delta[index + 1] -= 1
    blocked = 0
    valid: list[int] = []
    for cut in range(n + 1):
        blocked += delta[cut]
        if start < cut <= max_cut and blocked == 0:
            valid.append(cut)
    if not valid:
        return None
    kept = [0] * (n + 1)
    for index in range(n - 1, -1, -1):
        kept[index] = kept[index + 1] + estimate_tokens(messages[index])
    if kept[start] <= keep_recent:
        return None  # everything already fits in keep_recent: nothing to summarise
    for cut in valid:
        if kept[cut] <= keep_recent:
            return cut
    return valid[-1]


# -- summarising -----------------------------------------------------------------------------------

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


async def _model_call(model: Model, request: ModelRequest, emit: Emit) -> ModelResponse:
    """One summarisation call, reported like the turn loop's calls (not streamed)."""
    from .loop import call_model

    return await call_model(model, request, emit, stream=False)


async def _summarise(
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
    room = window - max_tokens - _estimate_text(_PROMPT + " ".join(instructions)) - _FRAMING_TOKENS
    chunks = _chunks(messages, max(_MIN_CHUNK_CHARS, (room - _estimate_text(previous or "")) * 4))
    if len(chunks) > 1:
        chunks = _chunks(messages, max(_MIN_CHUNK_CHARS, (room - max_tokens) * 4))
    usage = Usage()
    summary = previous
    for chunk in chunks:
        response = await _model_call(model, _summary_request(summary, chunk, instructions, max_tokens), emit)
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


# -- compacting a session --------------------------------------------------------------------------


@dataclass(slots=True)
class CompactionResult:
    """What one compaction did. ``messages_summarised`` is 0 when there was nothing to summarise."""

    reason: Reason
    messages_summarised: int
    tokens_before: int
    tokens_after: int
    summary: str | None
    usage: Usage


async def _compact(
    session: Session,
    turns: Turns | None,
    model: Model,
    settings: CompactionSettings,
    reason: Reason,
    tokens_before: int,
    keep_recent: int,
    max_cut: int,
    overhead: int,
    instructions: list[str],
    emit: Emit,
) -> CompactionResult | None:
    """Summarise ``session``'s older messages and persist the result; ``None`` when no valid cut
    exists. ``turns`` is the running operation, if any: its unsaved messages stay unsaved (the loop
    appends them when their turn completes, or drops them if the operation fails unanswered)."""
    history = session._history
    previous = summary_of(history[0]) if history else None
    start = 1 if previous is not None else 0
    cut = find_cut(history, start, keep_recent, max_cut)
    if cut is None:
        return None
    summarised = history[start:cut]
    emit(
        "compaction_start",
        {"reason": reason, "tokens_before": tokens_before, "messages_summarised": len(summarised)},
    )
    started = time.perf_counter()
    base = {"reason": reason, "tokens_before": tokens_before, "messages_summarised": len(summarised)}
    try:
        summary, usage = await _summarise(
            settings.summariser or model, settings, previous, summarised, instructions, emit
        )
        if turns is not None:
            turns.usage = turns.usage + usage
        compacted: list[StoredMessage] = [_summary_message(summary), *history[cut:]]
        unsaved = turns.unsaved if turns is not None else []
        tail = len(unsaved)
        keep_unsaved = (
            tail > 0
            and len(compacted) > tail
            and all(a is b for a, b in zip(compacted[-tail:], unsaved, strict=True))
        )
        # Store and memory change together: an abort arriving now waits for the write to finish.
        with anyio.CancelScope(shield=True):
            await session.harness.store.replace(session.key, compacted[:-tail] if keep_unsaved else compacted)
            if not keep_unsaved:
                unsaved.clear()
            history[:] = compacted
    except BaseException as exc:
        emit("compaction_end", {**base, "error": error_payload(exc), "duration_ms": _ms(started)})
        raise
    _forget_mark(session)
    tokens_after = _estimate_all(compacted, overhead)
    emit(
        "compaction_end",
        {**base, "tokens_after": tokens_after, "usage": usage.to_dict(), "duration_ms": _ms(started)},
    )
    return CompactionResult(reason, len(summarised), tokens_before, tokens_after, summary, usage)


class Compactor:
    """The turn loop's compaction hooks for one operation (``harness.compactor()`` makes one).

    ``before_call`` compacts above the threshold, ``on_overflow`` compacts after a provider
    ``ContextOverflowError`` and says whether a retry can help, ``observe_usage`` records what the
    provider reported so the next estimate starts from real numbers.
    """

    __slots__ = ("_config", "_count", "_settings")

    def __init__(self, config: CompactionConfig | None) -> None:
        self._config = config
        self._settings: CompactionSettings | None = None
        self._count = 0

    def settings(self, turns: Turns) -> CompactionSettings:
        if self._settings is None:
            env = turns.session.harness.context.env
            self._settings = _resolved(self._config, turns.model, env)
        return self._settings

    async def before_call(self, turns: Turns, request: ModelRequest) -> None:
        self._count = len(request.messages)
        settings = self.settings(turns)
        overhead = _estimate_overhead(request.instructions, request.tools)
        estimate = _estimate_prompt(turns.session, request.messages, overhead)
        if estimate <= settings.threshold:
            return
        # Keep at most half the budget verbatim, so the summary and the next answers have room.
        keep = min(settings.keep_recent, settings.threshold // 2)
        result = await self._compact(turns, request, settings, "threshold", estimate, keep, overhead)
        after = result.tokens_after if result is not None else estimate
        if after > settings.threshold and keep > 0:  # still too big: keep only what must stay
            result = await self._compact(turns, request, settings, "threshold", after, 0, overhead)
            after = result.tokens_after if result is not None else after
        if after > settings.context_window:
            raise ContextOverflowError(
                f"the prompt is about {after} tokens, more than the {settings.context_window}-token context "
                "window, and nothing older is left to summarise: the newest messages alone do not fit. "
                "Send less at once (shorter input, smaller tool results) or use a model with a larger window"
            )

    async def on_overflow(self, turns: Turns, request: ModelRequest) -> bool:
        """Compact hard (only the newest messages stay verbatim); ``True`` when the loop should retry."""
        settings = self.settings(turns)
        overhead = _estimate_overhead(request.instructions, request.tools)
        estimate = _estimate_all(request.messages, overhead)
        _forget_mark(turns.session)
        result = await self._compact(turns, request, settings, "overflow", estimate, 0, overhead)
        if result is None:
            raise ContextOverflowError(
                f"the provider says the prompt (about {estimate} tokens by our estimate) exceeds the context "
                "window, and nothing older is left to summarise: the newest messages alone do not fit. "
                "Send less at once (shorter input, smaller tool results) or use a model with a larger window"
            )
        return True

    def observe_usage(self, turns: Turns, usage: Usage) -> None:
        history = turns.session._history
        if usage.input_tokens <= 0 or not history or self._count > len(history):
            return
        key = _mark_key(turns.session)
        _marks[key] = _Mark(history[0], self._count, usage.input_tokens + usage.output_tokens)
        _marks.move_to_end(key)
        if len(_marks) > _MAX_MARKS:
            _marks.popitem(last=False)

    async def _compact(
        self,
        turns: Turns,
        request: ModelRequest,
        settings: CompactionSettings,
        reason: Reason,
        estimate: int,
        keep: int,
        overhead: int,
    ) -> CompactionResult | None:
        session = turns.session
        history = session._history
        # The newest message (the prompt or the last tool results) is what the call answers: kept.
        result = await _compact(
            session,
            turns,
            turns.model,
            settings,
            reason,
            estimate,
            keep,
            len(history) - 1,
            overhead,
            [settings.instructions] if settings.instructions else [],
            turns.emit,
        )
        if result is not None:
            request.messages = list(history)
            self._count = len(history)
        return result


def compactor_for(harness: AgentHarness) -> Compactor | None:
    """The hooks for one operation of ``harness``; ``None`` when its config says ``compaction: False``."""
    config = harness.config.compaction
    if config is False or (isinstance(config, CompactionConfig) and not config.enabled):
        return None
    return Compactor(config if isinstance(config, CompactionConfig) else None)


async def compact_session(
    session: Session, *, keep_recent: int | None = None, instructions: str | None = None
) -> CompactionResult:
    """Compact ``session`` now, as an operation of kind ``compact`` (it waits its turn behind the
    operations queued before it, and ``session.abort()`` cancels it, leaving the history unchanged).

    ``keep_recent`` (tokens) overrides ``keep_recent_tokens``: ``0`` summarises everything.
    ``instructions`` are added to the configured ones for this compaction. Works even when automatic
    compaction is disabled. Calling it from a tool of the session's own running operation raises
    ``ConfigError``: the operation compacts itself when it needs to.
    """
    from .loop import current_turns
    from .tasks import Spent, same_session, side_operation

    if keep_recent is not None and keep_recent < 0:
        raise ConfigError(f"keep_recent must be 0 or more tokens, got {keep_recent}")
    running = current_turns()
    if running is not None and same_session(running.session, session):
        raise ConfigError(
            "session.compact() cannot run inside this session's own operation (it would wait for "
            "itself); the operation compacts automatically when it needs to"
        )
    harness = session.harness
    config = harness.config.compaction
    described = {"keep_recent": keep_recent, "instructions": instructions}

    async def body(emit: Emit, operation_id: str, spent: Spent) -> tuple[CompactionResult, str | None]:
        model = harness.model
        settings = CompactionSettings.resolve(
            config if isinstance(config, CompactionConfig) else None, model, harness.context.env
        )
        tools = [tool.definition for tool in harness.tools.values()]
        overhead = _estimate_overhead(harness.instructions(), tools)
        history = session._history
        estimate = _estimate_prompt(session, history, overhead)
        extra = [text for text in (settings.instructions, instructions) if text]
        keep = settings.keep_recent if keep_recent is None else keep_recent
        result = await _compact(
            session, None, model, settings, "manual", estimate, keep, len(history), overhead, extra, emit
        )
        if result is None:
            result = CompactionResult(
                "manual", 0, estimate, estimate, summary_of(history[0]) if history else None, Usage()
            )
        spent.usage = result.usage
        return result, None

    return await side_operation(session, "compact", described, body)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
