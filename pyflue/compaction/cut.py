"""Where to cut a history for compaction: never between a tool call and its result."""

from __future__ import annotations

from collections.abc import Sequence

from ..models.messages import ToolCallPart, ToolResultPart
from ..stores.sessions import StoredMessage
from .estimate import estimate_tokens

__all__ = ["find_cut"]


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
