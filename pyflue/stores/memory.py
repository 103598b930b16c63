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


# -- workflow runs ---------------------------------------------------------------------------------

import itertools  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from ..errors import ConfigError, NotFoundError  # noqa: E402
from .base import RunPage, RunRecord, decode_cursor, encode_cursor  # noqa: E402

if TYPE_CHECKING:
    from ..events import Event

__all__ += ["MemoryRunStore"]


class MemoryRunStore:
    """Runs and event logs in dicts: for tests and ephemeral use in one process (lost at exit).

    Records are copied at the boundary so a caller mutating one never changes the stored run.
    """

    def __init__(self) -> None:
        self._runs: dict[str, tuple[int, RunRecord]] = {}
        self._events: dict[str, list[Event]] = {}
        self._cancel: dict[str, str] = {}
        self._counter = itertools.count(1)

    async def create_run(self, record: RunRecord) -> None:
        if record.run_id in self._runs:
            raise ConfigError(f"run id {record.run_id!r} already exists; pick another or leave it out")
        self._runs[record.run_id] = (next(self._counter), record.model_copy(deep=True))
        self._events[record.run_id] = []

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        self._events.setdefault(run_id, []).extend(events)

    async def finish_run(self, record: RunRecord, events: Sequence[Event] = ()) -> None:
        self._events.setdefault(record.run_id, []).extend(events)
        position = self._runs[record.run_id][0] if record.run_id in self._runs else next(self._counter)
        self._runs[record.run_id] = (position, record.model_copy(deep=True))
        self._cancel.pop(record.run_id, None)

    async def get_run(self, run_id: str) -> RunRecord | None:
        entry = self._runs.get(run_id)
        return entry[1].model_copy(deep=True) if entry is not None else None

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        before = decode_cursor(cursor) if cursor is not None else None
        chosen = sorted(
            (
                (position, record)
                for position, record in self._runs.values()
                if (workflow is None or record.workflow == workflow)
                and (status is None or record.status == status)
                and (before is None or position < before)
            ),
            key=lambda entry: entry[0],
            reverse=True,
        )
        page = chosen[: max(limit, 1)]
        more = len(chosen) > len(page)
        return RunPage(
            [record.model_copy(deep=True) for _, record in page],
            encode_cursor(page[-1][0]) if more else None,
        )

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        events = [e for e in self._events.get(run_id, ()) if e.seq > after_seq]
        return events if limit is None else events[:limit]

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        entry = self._runs.get(run_id)
        if entry is None:
            raise NotFoundError(f"no run {run_id!r} in this store")
        if entry[1].status != "running":
            return False
        self._cancel[run_id] = reason
        return True

    async def cancel_requested(self, run_id: str) -> str | None:
        return self._cancel.get(run_id)

    async def prune_runs(self, older_than: float) -> int:
        import time

        cutoff = time.time() - older_than
        doomed = [
            run_id
            for run_id, (_, record) in self._runs.items()
            if record.ended_at is not None and record.ended_at.timestamp() < cutoff
        ]
        for run_id in doomed:
            del self._runs[run_id]
            self._events.pop(run_id, None)
        return len(doomed)

    async def recover_interrupted(self) -> list[str]:
        """Nothing to recover: a memory store lives and dies with the process that runs its runs."""
        return []
