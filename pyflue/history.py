"""A stored session's messages in memory, and the one way they change.

One :class:`History` object exists per stored session and runtime: every ``Session`` object of that
stored session (other harnesses of the instance, or a session still in use after a cache evicted
it) shares it, so none prompts from a stale copy. Operations take turns on it (see
:mod:`pyflue._gates`), so only the operation holding the turn writes.

Messages an operation adds are *pending* until saved: a turn is stored as one append, at a point
where every tool call has its result. Memory never holds messages the store refused: a failed save
leaves them pending, and the operation's settlement drops them. ``replace`` (compaction) changes
store and memory together, shielded from cancellation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import anyio

from .stores.base import SessionKey, SessionStore, StoredMessage

__all__ = ["History", "SizeMarks"]


@dataclass(slots=True)
class SizeMarks:
    """What is known of the history's size in tokens, so a size check does not re-read it all.

    ``reported``: the provider's count for the last call, ``(first message, messages in that request,
    input + output tokens)``. ``estimated``: our own estimate of a prefix, ``(first, last, count,
    tokens)``. Both are identified by message identity and cleared when the history is replaced.
    """

    reported: tuple[StoredMessage, int, int] | None = None
    estimated: tuple[StoredMessage, StoredMessage, int, int] | None = None


class History(Sequence[StoredMessage]):
    """The messages of one stored session: a read-only sequence plus the writes operations make."""

    __slots__ = ("__weakref__", "_messages", "_pending", "key", "marks", "store")

    def __init__(self, store: SessionStore, key: SessionKey, messages: list[StoredMessage]) -> None:
        self.store = store
        self.key = key
        self._messages = messages
        self._pending: list[StoredMessage] = []
        self.marks = SizeMarks()

    # -- reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> StoredMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[StoredMessage]: ...
    def __getitem__(self, index: int | slice) -> StoredMessage | list[StoredMessage]:
        return self._messages[index]

    def __iter__(self) -> Iterator[StoredMessage]:
        return iter(self._messages)

    def snapshot(self) -> list[StoredMessage]:
        """A copy of the messages now (a model request is built from one)."""
        return list(self._messages)

    @property
    def pending(self) -> Sequence[StoredMessage]:
        """Messages in memory that the store does not have yet."""
        return tuple(self._pending)

    # -- writing (by the operation holding the session's turn) -------------------------------------

    def add(self, message: StoredMessage) -> None:
        """Add ``message`` in memory; it is stored by the next :meth:`save`."""
        self._messages.append(message)
        self._pending.append(message)

    async def save(self) -> None:
        """Store the pending messages as one append; on failure they stay pending."""
        if self._pending:
            await self.store.append(self.key, self._pending)
            self._pending = []

    async def append(self, messages: Sequence[StoredMessage]) -> None:
        """Store ``messages`` now, then add them in memory (nothing is left pending)."""
        await self.save()
        await self.store.append(self.key, messages)
        self._messages.extend(messages)

    def discard(self, messages: Sequence[StoredMessage]) -> None:
        """Remove ``messages`` (by identity: an equal message sent earlier stays) from memory and
        from the pending ones: an operation that failed unanswered leaves no trace."""
        dropped = {id(m) for m in messages}
        self._messages[:] = [m for m in self._messages if id(m) not in dropped]
        self._pending = [m for m in self._pending if id(m) not in dropped]

    async def replace(self, messages: Sequence[StoredMessage]) -> None:
        """Replace the whole history, in the store and in memory together (an abort arriving
        meanwhile waits for the write). Pending messages that are still the tail of ``messages``
        stay pending (their operation stores them when its turn completes); others are dropped."""
        pending = self._pending
        tail = len(pending)
        keep = (
            tail > 0
            and len(messages) > tail
            and all(a is b for a, b in zip(messages[-tail:], pending, strict=True))
        )
        with anyio.CancelScope(shield=True):
            await self.store.replace(self.key, messages[:-tail] if keep else messages)
            if not keep:
                self._pending = []
            self._messages[:] = messages
            self.marks = SizeMarks()
