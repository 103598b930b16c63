"""In-memory stores: the default for embedded use without a project, and for tests.

They keep the store protocols' whole contract (versions, leases, cursors) in one process and lose
everything when it ends. Values are copied at the boundary, so a caller mutating its list or record
never changes what is stored.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, NotFoundError, shown
from .changes import Topics, Watch
from .runs import (
    JournalStep,
    RunNotInterruptedError,
    RunPage,
    RunRecord,
    decode_cursor,
    encode_cursor,
    not_resumable,
)
from .sessions import SessionKey, StaleVersionError, StoredHistory, StoredMessage, check_page, check_ttl

if TYPE_CHECKING:
    from ..events import Event

__all__ = ["MemoryRunStore", "MemorySessionStore"]


@dataclass(slots=True)
class _Head:
    """A session's version and turn lease (``expires`` on the monotonic clock)."""

    version: int = 0
    owner: str | None = None
    expires: float = 0.0


class MemorySessionStore:
    """Histories in a dict, with the versions and leases of the :class:`SessionStore` contract."""

    #: No other process can reach these histories, so operations take no turn leases on them.
    process_local = True

    def __init__(self) -> None:
        self._histories: dict[SessionKey, list[StoredMessage]] = {}
        self._heads: dict[SessionKey, _Head] = {}

    def _head(self, key: SessionKey) -> _Head:
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = _Head()
        return head

    def _write(self, key: SessionKey, expected: int | None, release: str | None) -> _Head:
        head = self._head(key)
        if expected is not None and head.version != expected:
            raise StaleVersionError(
                f"session {key.session_id!r} is at version {head.version}, not {expected}: "
                "another owner changed it; reload it and take the turn again"
            )
        head.version += 1
        if release is not None and head.owner == release:
            head.owner = None
        return head

    async def load(self, key: SessionKey) -> StoredHistory:
        head = self._heads.get(key)
        return StoredHistory(self._histories.get(key, ()), head.version if head is not None else 0)

    async def append(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        if not messages:
            if release is not None:
                await self.release(key, release)
            head = self._heads.get(key)
            return head.version if head is not None else 0
        head = self._write(key, expected, release)
        # As in SQLite, a session with no messages does not exist (nor is it listed).
        self._histories.setdefault(key, []).extend(messages)
        return head.version

    async def replace(
        self,
        key: SessionKey,
        messages: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        head = self._write(key, expected, release)
        if messages:
            self._histories[key] = list(messages)
        else:
            self._histories.pop(key, None)
        return head.version

    async def delete(self, key: SessionKey) -> None:
        if key in self._histories or key in self._heads:
            self._head(key).version += 1
        self._histories.pop(key, None)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        return sorted(
            k.session_id for k in self._histories if k.agent == agent and k.instance_id == instance_id
        )

    async def list_instances(
        self, agent: str, *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        check_page(limit)
        # Histories are never kept empty (see append/replace), so every key here holds messages.
        found = sorted(
            {
                k.instance_id
                for k in self._histories
                if k.agent == agent and (after is None or k.instance_id > after)
            }
        )
        return found if limit is None else found[:limit]

    async def acquire(self, key: SessionKey, owner: str, ttl: float) -> int | None:
        check_ttl(ttl)
        head = self._head(key)
        now = time.monotonic()
        if head.owner is not None and head.owner != owner and head.expires > now:
            return None
        head.owner, head.expires = owner, now + ttl
        return head.version

    async def release(self, key: SessionKey, owner: str) -> None:
        head = self._heads.get(key)
        if head is not None and head.owner == owner:
            head.owner = None

    async def aclose(self) -> None:
        """Nothing to release; the histories stay readable."""


class MemoryRunStore:
    """Runs and event logs in dicts: for tests and ephemeral use in one process (lost at exit).

    Records are copied at the boundary so a caller mutating one never changes the stored run.
    """

    def __init__(self) -> None:
        self._runs: dict[str, tuple[int, RunRecord]] = {}
        self._events: dict[str, list[Event]] = {}
        self._cancel: dict[str, str] = {}
        self._journals: dict[str, dict[str, JournalStep]] = {}
        self._counter = itertools.count(1)
        self._changes = Topics()  # wakes watch()ers of a run when its log or record changes

    async def create_run(self, record: RunRecord) -> None:
        if record.run_id in self._runs:
            raise ConfigError(f"run id {record.run_id!r} already exists; pick another or leave it out")
        self._runs[record.run_id] = (next(self._counter), record.model_copy(deep=True))
        self._events[record.run_id] = []

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        self._events.setdefault(run_id, []).extend(events)
        self._changes.touch(run_id)

    async def finish_run(self, record: RunRecord, events: Sequence[Event] = ()) -> None:
        self._events.setdefault(record.run_id, []).extend(events)
        position = self._runs[record.run_id][0] if record.run_id in self._runs else next(self._counter)
        self._runs[record.run_id] = (position, record.model_copy(deep=True))
        self._cancel.pop(record.run_id, None)
        self._changes.touch(record.run_id)

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
            raise NotFoundError(f"no run {shown(run_id)} in this store")
        if entry[1].status != "running":
            return False
        self._cancel[run_id] = reason
        return True

    async def heartbeat(self, run_id: str) -> str | None:
        """Ownership here is by process liveness, not lease: a heartbeat only reads cancel requests."""
        return await self.cancel_requested(run_id)

    async def cancel_requested(self, run_id: str) -> str | None:
        return self._cancel.get(run_id)

    async def prune_runs(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        doomed = [
            run_id
            for run_id, (_, record) in self._runs.items()
            if record.ended_at is not None and record.ended_at.timestamp() < cutoff
        ]
        for run_id in doomed:
            del self._runs[run_id]
            self._events.pop(run_id, None)
            self._journals.pop(run_id, None)
        return len(doomed)

    async def record_step(self, run_id: str, step: JournalStep, events: Sequence[Event] = ()) -> None:
        self._events.setdefault(run_id, []).extend(events)
        self._journals.setdefault(run_id, {})[step.step] = step
        if events:
            self._changes.touch(run_id)

    async def read_journal(self, run_id: str) -> list[JournalStep]:
        return sorted(self._journals.get(run_id, {}).values(), key=lambda s: s.position)

    async def reopen_run(self, run_id: str, owner_pid: int | None, owner_host: str | None) -> RunRecord:
        entry = self._runs.get(run_id)
        if entry is None:
            raise NotFoundError(f"no run {shown(run_id)} in this store")
        position, record = entry
        if record.status != "interrupted":
            raise RunNotInterruptedError(not_resumable(record))
        reopened = record.model_copy(
            update={
                "status": "running",
                "error": None,
                "ended_at": None,
                "duration_ms": None,
                "owner_pid": owner_pid,
                "owner_host": owner_host,
            },
            deep=True,
        )
        self._runs[run_id] = (position, reopened)
        return record.model_copy(deep=True)

    async def recover_interrupted(self) -> list[str]:
        """Nothing to recover: a memory store lives and dies with the process that runs its runs."""
        return []

    async def aclose(self) -> None:
        """Nothing to release; the runs stay readable."""

    async def watch(self, run_id: str) -> Watch:
        """A watch of ``run_id``, woken by this store's writes (the only writer a memory store has)."""
        return self._changes.watch(run_id)
