"""The session store protocol: small on purpose, so a Postgres store is a page of code.

A conversation is an append-only sequence of messages keyed by (agent, instance, session). A turn
appends only its new messages (O(1) per turn, whatever the history's length); compaction is the one
operation that rewrites a history, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from ..models.messages import AssistantMessage, UserMessage

__all__ = ["SessionKey", "SessionStore"]

StoredMessage = UserMessage | AssistantMessage


class SessionKey(NamedTuple):
    agent: str
    instance_id: str
    session_id: str


@runtime_checkable
class SessionStore(Protocol):
    async def load(self, key: SessionKey) -> list[StoredMessage]:
        """The whole history, oldest first; empty for a new session."""
        ...

    async def append(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        """Add messages at the end, atomically (all or none)."""
        ...

    async def replace(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        """Replace the whole history atomically (compaction)."""
        ...

    async def delete(self, key: SessionKey) -> None:
        """Forget one session; other sessions are untouched whatever their ids."""
        ...

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        """Session ids of one instance, sorted."""
        ...
