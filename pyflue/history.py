"""A stored session's messages in memory, and the one way they change.

One :class:`History` object exists per stored session and runtime: every ``Session`` object of that
stored session (other harnesses of the instance, or a session still in use after a cache evicted
it) shares it, so none prompts from a stale copy. Operations take turns on it (see
:mod:`pyflue._gates`), so only the operation holding the turn writes.

Messages an operation adds are *pending* until saved. Memory never holds messages the store
refused: a failed save leaves them pending, and the operation's settlement drops them. ``replace``
(compaction) changes store and memory together, shielded from cancellation.

Across processes, an operation holds the session's turn *lease* in the store
(:meth:`take_turn` … :meth:`end_turn`): another process waits for it, and a process whose history
is older than the store's (another process prompted meanwhile) reloads before it prompts. Every
write names the version it expects, so a process whose lease lapsed (a model call longer than the
lease) can never write into a conversation that moved on: its write fails with a ``StoreError``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import anyio

from .errors import StoreError
from .stores.liveness import hostname
from .stores.sessions import SessionKey, SessionStore, StoredHistory, StoredMessage

__all__ = ["History", "SizeMarks"]

_log = logging.getLogger("pyflue.history")

#: Seconds an operation's turn lease lasts without renewal; it is renewed at each model call and
#: write once a third of it has passed.
LEASE_SECONDS = 30.0


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

    __slots__ = (
        "__weakref__",
        "_messages",
        "_owner",
        "_pending",
        "_renewed",
        "key",
        "marks",
        "store",
        "version",
    )

    def __init__(self, store: SessionStore, key: SessionKey, messages: StoredHistory) -> None:
        self.store = store
        self.key = key
        self._messages: list[StoredMessage] = list(messages)
        #: The store's version of the session that memory matches.
        self.version = messages.version
        self._pending: list[StoredMessage] = []
        self.marks = SizeMarks()
        self._owner: str | None = None
        self._renewed = 0.0

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
            await self.keep_turn()
            self.version = await self.store.append(self.key, self._pending, expected=self.version)
            self._pending = []

    async def append(self, messages: Sequence[StoredMessage]) -> None:
        """Store ``messages`` now, then add them in memory (nothing is left pending)."""
        await self.save()
        self.version = await self.store.append(self.key, messages, expected=self.version)
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
            stored = messages[:-tail] if keep else messages
            self.version = await self.store.replace(self.key, stored, expected=self.version)
            if not keep:
                self._pending = []
            self._messages[:] = messages
            self.marks = SizeMarks()

    # -- the turn across processes -----------------------------------------------------------------

    async def take_turn(self, operation_id: str) -> None:
        """Hold the session's turn lease in the store for an operation (waiting while another
        process holds it), and reload the messages if the store has moved on since memory last
        matched it. The caller holds the in-process turn already."""
        owner = f"{hostname()}:{os.getpid()}:{operation_id}"
        delay = 0.005
        while True:
            version = await self.store.acquire(self.key, owner, LEASE_SECONDS)
            if version is not None:
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25)
        self._owner, self._renewed = owner, time.monotonic()
        if version != self.version:
            fresh = await self.store.load(self.key)
            self._messages[:] = fresh
            self._pending = []
            self.version = fresh.version
            self.marks = SizeMarks()

    async def keep_turn(self) -> None:
        """Renew the lease once a third of it has passed (called before model calls and writes)."""
        owner = self._owner
        if owner is None or time.monotonic() - self._renewed < LEASE_SECONDS / 3:
            return
        version = await self.store.acquire(self.key, owner, LEASE_SECONDS)
        if version is None or version != self.version:
            raise StoreError(
                f"session {self.key.session_id!r} of {self.key.agent!r}/{self.key.instance_id!r} was "
                "taken over by another process while this operation ran (its lease lapsed); retry it"
            )
        self._renewed = time.monotonic()

    async def end_turn(self) -> None:
        """Store what is still pending and give the lease up, in one write when there is one."""
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if self._pending:
            self.version = await self.store.append(
                self.key, self._pending, expected=self.version, release=owner
            )
            self._pending = []
        else:
            await self.store.release(self.key, owner)

    async def abandon_turn(self) -> None:
        """After a failure: drop what the store does not have from memory, and give the lease up
        (a store that cannot be reached now lets it expire)."""
        owner, self._owner = self._owner, None
        if self._pending:
            self.discard(self._pending)
        if owner is not None:
            try:
                await self.store.release(self.key, owner)
            except Exception:
                _log.warning(
                    "could not release the turn of %s; it expires by itself", self.key, exc_info=True
                )
