"""A stored session's messages in memory, and the one way they change.

One :class:`History` object exists per stored session and runtime: every ``Session`` object of that
stored session (other harnesses of the instance, or a session still in use after a cache evicted
it) shares it, so none prompts from a stale copy. Operations take turns on it (its ``gate``, a
:class:`~pyflue._gates.TurnGate`), so only the operation holding the turn writes.

Messages an operation adds are *pending* until saved. Memory never holds messages the store
refused: a failed save leaves them pending, and the operation's settlement drops them. ``replace``
(compaction) changes store and memory together, shielded from cancellation.

Across processes, an operation holds the session's turn *lease* in the store
(:meth:`take_turn` … :meth:`end_turn`): another process waits for it, and a process whose history
is older than the store's (another process prompted meanwhile) reloads before it prompts. The lease
is renewed beside the operation and expires soon after a process dies (``Runtime``'s
``session_lease_seconds``). Every write names the version it expects, so a process whose lease
lapsed can never write into a conversation that moved on: its write fails with a ``StoreError``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import anyio

from ._gates import TurnGate
from .stores.liveness import hostname
from .stores.sessions import SessionKey, SessionStore, StoredHistory, StoredMessage

__all__ = ["History", "SizeMarks"]

_log = logging.getLogger("pyflue.history")


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
        "_lease",
        "_local",
        "_messages",
        "_owner",
        "_pending",
        "gate",
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
        #: The in-process turn: operations on this stored session enter it one at a time.
        self.gate = TurnGate()
        self.marks = SizeMarks()
        self._owner: str | None = None
        self._lease = 0.0
        #: A store no other process can reach takes no turn leases (see take_turn).
        self._local = bool(getattr(store, "process_local", False))

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

    @property
    def leased(self) -> bool:
        """Whether an operation holds the store's turn lease now (stores other processes reach)."""
        return self._owner is not None

    async def take_turn(self, operation_id: str, lease_seconds: float) -> None:
        """Hold the session's turn lease in the store for an operation (waiting while another
        process holds it), and reload the messages if the store has moved on since memory last
        matched it. The caller holds the in-process turn already. A store no other process can
        reach (``process_local``) needs no lease."""
        if self._local:
            return
        owner = f"{hostname()}:{os.getpid()}:{operation_id}"
        delay = 0.005
        while True:
            version = await self.store.acquire(self.key, owner, lease_seconds)
            if version is not None:
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25)
        self._owner, self._lease = owner, lease_seconds
        if version != self.version:
            fresh = await self.store.load(self.key)
            self._messages[:] = fresh
            self._pending = []
            self.version = fresh.version
            self.marks = SizeMarks()

    async def hold_turn(self) -> None:
        """Renew the lease every third of it for as long as the operation holds it (run beside the
        operation). A lapsed lease is only logged: the operation's writes name the version they
        expect, so a process that lost the session fails its next write instead of interleaving."""
        owner, lease = self._owner, self._lease
        while owner is not None:
            await anyio.sleep(lease / 3)
            if self._owner != owner:
                return
            if await self.store.acquire(self.key, owner, lease) is None:
                _log.warning("the turn of %s lapsed: another process took the session", self.key)
                return

    async def end_turn(self) -> None:
        """Store what is still pending and give the lease up, in one write when there is one."""
        owner, self._owner = self._owner, None
        if self._pending:
            self.version = await self.store.append(
                self.key, self._pending, expected=self.version, release=owner
            )
            self._pending = []
        elif owner is not None:
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
