"""Compacting a session: when (the turn loop's hooks, or on demand) and the one way it is done.

Before each model call the loop asks the :class:`Compactor` whether the prompt still fits. Above
``context_window - reserve`` the older messages are summarised into one summary message, the most
recent ``keep_recent_tokens`` stay verbatim, the compacted history replaces the stored one atomically
and the request goes on with it. A provider ``ContextOverflowError`` (our estimate was wrong)
compacts hard, keeping only the newest messages verbatim, and the loop retries once; when nothing
older can be summarised the operation fails with a ``ContextOverflowError`` that says so — it never
loops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .._clock import elapsed_ms
from ..errors import ConfigError, ContextOverflowError, error_payload
from ..history import History
from ..loop import Turns, current_turns
from ..model_calls import Emit
from ..models.base import Model, ModelRequest, Usage
from ..session import Session
from ..stores.sessions import StoredMessage
from .cut import find_cut
from .estimate import estimate_all, estimate_overhead, estimate_prompt, forget_usage, record_usage
from .settings import CompactionSettings
from .summary import summarise, summary_message, summary_of

__all__ = ["CompactionResult", "Compactor", "compact_session"]

Reason = Literal["threshold", "overflow", "manual"]


@dataclass(slots=True)
class CompactionResult:
    """What one compaction did. ``messages_summarised`` is 0 when there was nothing to summarise."""

    reason: Reason
    messages_summarised: int
    tokens_before: int
    tokens_after: int
    summary: str | None
    usage: Usage


@dataclass(frozen=True, slots=True)
class _Pass:
    """One compaction to do: why, the size before, how many tokens stay verbatim, how far the cut
    may reach, and extra instructions for the summariser."""

    reason: Reason
    tokens_before: int
    keep_recent: int
    max_cut: int
    instructions: tuple[str, ...]


async def _compact(
    history: History,
    model: Model,
    settings: CompactionSettings,
    overhead: int,
    job: _Pass,
    emit: Emit,
    spend: Callable[[Usage], None],
) -> CompactionResult | None:
    """Summarise ``history``'s older messages and persist the result; ``None`` when no valid cut
    exists. Pending messages of the running operation stay pending (see :meth:`History.replace`)."""
    previous = summary_of(history[0]) if len(history) else None
    start = 1 if previous is not None else 0
    cut = find_cut(history, start, job.keep_recent, job.max_cut)
    if cut is None:
        return None
    summarised = history[start:cut]
    base = {"reason": job.reason, "tokens_before": job.tokens_before, "messages_summarised": len(summarised)}
    emit("compaction_start", dict(base))
    started = time.perf_counter()
    try:
        summary, usage = await summarise(
            settings.summariser or model, settings, previous, summarised, list(job.instructions), emit
        )
        spend(usage)
        compacted: list[StoredMessage] = [summary_message(summary), *history[cut:]]
        await history.replace(compacted)
    except BaseException as exc:
        emit("compaction_end", {**base, "error": error_payload(exc), "duration_ms": elapsed_ms(started)})
        raise
    tokens_after = estimate_all(compacted, overhead)
    emit(
        "compaction_end",
        {**base, "tokens_after": tokens_after, "usage": usage.to_dict(), "duration_ms": elapsed_ms(started)},
    )
    return CompactionResult(job.reason, len(summarised), job.tokens_before, tokens_after, summary, usage)


_TOO_BIG = (
    "and nothing older is left to summarise: the newest messages alone do not fit. "
    "Send less at once (shorter input, smaller tool results) or use a model with a larger window"
)


class Compactor:
    """The turn loop's compaction hooks for one operation (implements
    :class:`~pyflue.loop.CompactionHooks`).

    ``before_call`` compacts above the threshold, ``on_overflow`` compacts after a provider
    ``ContextOverflowError``, ``observe_usage`` records what the provider reported so the next
    estimate starts from real numbers.
    """

    __slots__ = ("_count", "_settings", "_tool_chars")

    def __init__(self, settings: CompactionSettings, tool_chars: int) -> None:
        self._settings = settings
        self._tool_chars = tool_chars
        self._count = 0

    def _overhead(self, request: ModelRequest) -> int:
        return estimate_overhead(request.instructions, self._tool_chars)

    async def before_call(self, turns: Turns, request: ModelRequest) -> None:
        self._count = len(request.messages)
        settings = self._settings
        overhead = self._overhead(request)
        estimate = estimate_prompt(turns.session.messages, request.messages, overhead)
        if estimate <= settings.threshold:
            return
        # Keep at most half the budget verbatim, so the summary and the next answers have room.
        keep = min(settings.keep_recent, settings.threshold // 2)
        result = await self._compact(turns, request, "threshold", estimate, keep, overhead)
        after = result.tokens_after if result is not None else estimate
        if after > settings.threshold and keep > 0:  # still too big: keep only what must stay
            result = await self._compact(turns, request, "threshold", after, 0, overhead)
            after = result.tokens_after if result is not None else after
        if after > settings.context_window:
            raise ContextOverflowError(
                f"the prompt is about {after} tokens, more than the {settings.context_window}-token "
                f"context window, {_TOO_BIG}"
            )

    async def on_overflow(self, turns: Turns, request: ModelRequest) -> bool:
        """Compact hard (only the newest messages stay verbatim); ``True`` when the loop should retry."""
        overhead = self._overhead(request)
        estimate = estimate_all(request.messages, overhead)
        forget_usage(turns.session.messages)
        result = await self._compact(turns, request, "overflow", estimate, 0, overhead)
        if result is None:
            raise ContextOverflowError(
                f"the provider says the prompt (about {estimate} tokens by our estimate) exceeds the "
                f"context window, {_TOO_BIG}"
            )
        return True

    def observe_usage(self, turns: Turns, usage: Usage) -> None:
        record_usage(turns.session.messages, self._count, usage.input_tokens, usage.output_tokens)

    async def _compact(
        self, turns: Turns, request: ModelRequest, reason: Reason, estimate: int, keep: int, overhead: int
    ) -> CompactionResult | None:
        history = turns.session.messages
        settings = self._settings
        # The newest message (the prompt or the last tool results) is what the call answers: kept.
        extra = (settings.instructions,) if settings.instructions else ()
        job = _Pass(reason, estimate, keep, len(history) - 1, extra)
        result = await _compact(history, turns.model, settings, overhead, job, turns.emit, turns.spend)
        if result is not None:
            request.messages = history.snapshot()
            self._count = len(history)
        return result


async def compact_session(
    session: Session,
    settings: CompactionSettings,
    model: Model,
    instructions_now: str | None,
    tool_chars: int,
    *,
    keep_recent: int | None = None,
    instructions: str | None = None,
) -> CompactionResult:
    """Compact ``session`` now, as an operation of kind ``compact`` (it waits its turn behind the
    operations queued before it, and ``session.abort()`` cancels it, leaving the history unchanged).

    ``keep_recent`` (tokens) overrides ``keep_recent_tokens``: ``0`` summarises everything.
    ``instructions`` are added to the configured ones for this compaction. Works even when automatic
    compaction is disabled. Calling it from a tool of the session's own running operation raises
    ``ConfigError``: the operation compacts itself when it needs to.
    """
    if keep_recent is not None and keep_recent < 0:
        raise ConfigError(f"keep_recent must be 0 or more tokens, got {keep_recent}")
    running = current_turns()
    if session.holds_turn() or (running is not None and running.session is session):
        raise ConfigError(
            "session.compact() cannot run inside this session's own operation (it would wait for "
            "itself); the operation compacts automatically when it needs to"
        )
    described = {"keep_recent": keep_recent, "instructions": instructions}
    async with session.operation("compact", described) as op:

        def spend(usage: Usage) -> None:
            op.usage = op.usage + usage

        history = session.messages
        overhead = estimate_overhead(instructions_now, tool_chars)
        estimate = estimate_prompt(history, history.snapshot(), overhead)
        extra = tuple(text for text in (settings.instructions, instructions) if text)
        keep = settings.keep_recent if keep_recent is None else keep_recent
        job = _Pass("manual", estimate, keep, len(history), extra)
        result = await _compact(history, model, settings, overhead, job, op.emit, spend)
        if result is None:
            result = CompactionResult(
                "manual", 0, estimate, estimate, summary_of(history[0]) if len(history) else None, Usage()
            )
    return result
