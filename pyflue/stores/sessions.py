"""Session histories as a store keeps them, and the :class:`SessionStore` protocol.

A conversation is an append-only sequence of messages keyed by ``(agent, instance, session)``. A turn
appends only its new messages (O(1) per turn, whatever the history's length); compaction is the one
operation that rewrites a history, atomically.

Several processes may share one store, so a session also has a **version** and a **turn lease**:

- The version is an integer that increases with every change of the session (``append`` of at least
  one message, ``replace``, ``delete``) and never repeats for that session, deletions included. A new
  session is at version 0. ``load`` returns the messages with the version they were read at;
  ``append`` / ``replace`` return the version they produced. A process whose in-memory history is at
  the store's version holds the whole conversation; one that is behind reloads.
- The lease says which owner (an opaque string, one per process and operation) is taking its turn.
  ``acquire`` takes it, or renews it for the owner holding it, for ``ttl`` seconds and returns the
  version in the same atomic step; it returns ``None`` while another owner holds an unexpired lease.
  An expired lease is taken over. ``release`` ends it; ``append(..., release=owner)`` and
  ``replace(..., release=owner)`` end it in the same write as the turn's last messages.
- ``expected=`` on ``append`` / ``replace`` fences a write: it is refused with
  :class:`StaleVersionError` unless the session is still at that version, so an owner whose lease
  lapsed (a paused process) never writes into a conversation that moved on without it.

A prompt that takes its turn across processes therefore costs one write more than a prompt that
does not: ``acquire`` (lease and version in one transaction), then the turn's appends, the last of
them releasing the lease. Ids are data: any string, never a path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from ..errors import ConfigError, StoreError
from ..models.messages import AssistantMessage, UserMessage, messages_adapter

__all__ = [
    "SessionKey",
    "SessionStore",
    "StaleVersionError",
    "StoredHistory",
    "StoredMessage",
    "check_page",
    "check_ttl",
    "decode_messages",
    "encode_message",
]

StoredMessage = UserMessage | AssistantMessage


class SessionKey(NamedTuple):
    agent: str
    instance_id: str
    session_id: str


class StoredHistory(list[StoredMessage]):
    """The messages of a session as :meth:`SessionStore.load` read them, oldest first, and the
    ``version`` they were read at. A copy: changing it never changes the store."""

    __slots__ = ("version",)

    def __init__(self, messages: Iterable[StoredMessage] = (), version: int = 0) -> None:
        super().__init__(messages)
        self.version = version

    def __repr__(self) -> str:
        return f"StoredHistory({list.__repr__(self)}, version={self.version})"


class StaleVersionError(StoreError):
    """A fenced write (``expected=``) found the session at another version: another owner changed
    it meanwhile. Reload the history and take the turn again."""


#: Messages decoded per call: each call holds the interpreter, so a long history is decoded in
#: slices and other threads (the event loop's) run in between.
DECODE_SLICE = 256


def encode_message(message: StoredMessage) -> bytes:
    """A message in its storage form: a one-element JSON array (bytes). Database stores keep one
    per row and call this in a worker thread."""
    return messages_adapter().dump_json([message], exclude_none=True)


def decode_messages(encoded: Sequence[bytes]) -> list[StoredMessage]:
    """The messages of :func:`encode_message` forms, in order (in slices of
    :data:`DECODE_SLICE`; call it in a worker thread)."""
    messages: list[StoredMessage] = []
    for start in range(0, len(encoded), DECODE_SLICE):
        inner = b",".join(bytes(blob)[1:-1] for blob in encoded[start : start + DECODE_SLICE])
        messages += messages_adapter().validate_json(b"[" + inner + b"]")
    return messages


def check_ttl(ttl: float) -> None:
    """``ConfigError`` unless ``ttl`` is a positive, finite number of seconds."""
    if not (isinstance(ttl, int | float) and 0 < ttl < float("inf")):
        raise ConfigError(f"lease ttl must be a positive number of seconds, not {ttl!r}")


def check_page(limit: int | None) -> None:
    """``ConfigError`` unless ``limit`` is ``None`` (no limit) or a whole number of at least 1."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a whole number of at least 1 (or None for all), not {limit!r}")


@runtime_checkable
class SessionStore(Protocol):
    """Where session histories live; see the module docstring for versions and leases.

    A store whose histories no other process can reach may set a class attribute
    ``process_local = True`` (the memory store does): operations then take no turn leases on it.
    """

    async def load(self, key: SessionKey) -> StoredHistory:
        """The whole history, oldest first, and its version; empty at version 0 for a new session."""
        ...

    async def append(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        """Add ``messages`` at the end, atomically (all or none); the session's version after it.

        No messages change nothing (the version stays). ``expected``: refuse with
        :class:`StaleVersionError` unless the session is at that version. ``release``: end that
        owner's lease in the same write (a no-op when it does not hold it)."""
        ...

    async def replace(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        """Replace the whole history atomically (compaction); the new version. ``expected`` and
        ``release`` as for :meth:`append`."""
        ...

    async def delete(self, key: SessionKey) -> None:
        """Forget one session's messages; other sessions are untouched whatever their ids. Its
        version still moves on (a deleted and rewritten session never repeats a version)."""
        ...

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        """Ids of the instance's sessions that hold messages, sorted."""
        ...

    async def list_instances(
        self, agent: str, *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        """Ids of the agent's instances that hold at least one session with messages, sorted by code
        point, like :meth:`list_sessions`.

        A store may hold more instances than one answer should carry, so the list pages by keyset:
        ``limit`` caps it (``None``: all; else at least 1, or ``ConfigError``) and ``after`` keeps
        only the ids sorting after that one (pass the last id of the previous page). A page is
        exact however instances come and go between pages: no id is seen twice, and every id that
        held messages throughout is seen. How cheap a page is depends on the store's indexes
        (docs/decisions/0024-agent-instance-listing.md)."""
        ...

    async def acquire(self, key: SessionKey, owner: str, ttl: float) -> int | None:
        """Take, or renew, ``owner``'s turn lease on the session for ``ttl`` seconds and return the
        session's version; ``None`` (nothing changed) while another owner's lease is unexpired."""
        ...

    async def release(self, key: SessionKey, owner: str) -> None:
        """End ``owner``'s lease on the session; a no-op when ``owner`` does not hold it."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections it opened); it is not used afterwards."""
        ...
