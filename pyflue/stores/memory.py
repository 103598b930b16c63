"""In-memory stores: the default for embedded use without a project, and for tests."""

from __future__ import annotations

from collections.abc import Sequence

from .base import SessionKey, StoredMessage

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    """Histories in a dict; lost when the process ends. Lists are copied at the boundary so a
    caller mutating its list never changes the stored history."""

    def __init__(self) -> None:
        self._histories: dict[SessionKey, list[StoredMessage]] = {}

    async def load(self, key: SessionKey) -> list[StoredMessage]:
        return list(self._histories.get(key, ()))

    async def append(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        if messages:  # as in SQLite, a session with no messages does not exist (nor is it listed)
            self._histories.setdefault(key, []).extend(messages)

    async def replace(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        if messages:
            self._histories[key] = list(messages)
        else:
            self._histories.pop(key, None)

    async def delete(self, key: SessionKey) -> None:
        self._histories.pop(key, None)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        return sorted(
            k.session_id for k in self._histories if k.agent == agent and k.instance_id == instance_id
        )
