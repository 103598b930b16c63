"""Automatic resumption: an owner object that resumes a project's interrupted resumable runs.

A :class:`Resumer` runs beside a worker or a server (``pyflue worker --auto-resume``, ``pyflue serve
--auto-resume``, ``create_app(auto_resume=True)``): when it starts and every ``interval`` seconds it
marks the runs of dead owners ``interrupted`` (``recover_interrupted``), then resumes each interrupted
run that kept a journal, in this process (:func:`pyflue.workflow.continue_run`). Reopening a run is
atomic in the store, so of several resumers sharing a store (workers on one PostgreSQL database, or
on one SQLite file) exactly one resumes a given run; the others skip it.

When the resumer stops, runs it resumed get ``grace_period`` seconds to finish, then are stopped and
recorded ``interrupted`` (:func:`pyflue.workflow.interrupt_local`): the process stopped them, nobody
asked to cancel them, so the next resumer (after a restart, or on another worker) continues them. A
run cancelled by a request while it runs still ends ``cancelled``. A run that keeps failing is not
retried by the resumer beyond ``max_attempts`` resumptions: its record stays ``interrupted`` for a
person.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .errors import ConfigError
from .stores.runs import RunJournalStore, RunNotInterruptedError, RunStore
from .stores.sessions import SessionStore
from .workflow import WorkflowHost, continue_run, interrupt_local, resumable_journal

__all__ = ["Resumer"]

_log = logging.getLogger("pyflue.resuming")


class Resumer:
    """Resumes the interrupted resumable runs of ``host`` (a :class:`~pyflue.Project`) while open
    (``async with``). ``resumed`` lists the ids of the runs this object resumed, in order."""

    def __init__(
        self,
        host: WorkflowHost,
        *,
        interval: float = 5.0,
        grace_period: float = 10.0,
        max_attempts: int = 3,
        run_store: RunStore | None = None,
        session_store: SessionStore | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not interval > 0 or grace_period < 0 or max_attempts < 1:
            raise ConfigError("interval must be positive, grace_period >= 0 and max_attempts >= 1")
        self.host = host
        self.interval = interval
        self.grace_period = grace_period
        self.max_attempts = max_attempts
        self._run_store = run_store
        self._session_store = session_store
        self._env = env
        self.resumed: list[str] = []
        self._skip: set[str] = set()
        self._running: set[str] = set()
        self._done = anyio.Event()
        self._idle = anyio.Event()
        self._group: TaskGroup | None = None
        self._runs: TaskGroup | None = None

    @property
    def store(self) -> RunStore:
        return self._run_store if self._run_store is not None else self.host.run_store

    async def sweep(self) -> list[str]:
        """One pass: mark dead owners' runs interrupted, resume the resumable ones; the ids of the
        runs it resumed (each then runs in the resumer's task group)."""
        store = self.store
        if not isinstance(store, RunJournalStore) or self._runs is None:
            return []
        await store.recover_interrupted()
        started: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.list_runs(status="interrupted", limit=100, cursor=cursor)
            for record in page:
                run_id = record.run_id
                if run_id in self._skip or run_id in self._running:
                    continue
                if not resumable_journal(await store.read_journal(run_id)):
                    self._skip.add(run_id)
                    continue
                attempts = sum(1 for e in await store.read_events(run_id) if e.type == "run_resume")
                if attempts >= self.max_attempts:
                    _log.warning("run %s was resumed %d times; leaving it interrupted", run_id, attempts)
                    self._skip.add(run_id)
                    continue
                try:
                    await self._runs.start(self._resume, run_id)
                except RunNotInterruptedError:
                    continue  # another process resumed it first
                except Exception:
                    _log.warning("could not resume run %s", run_id, exc_info=True)
                    self._skip.add(run_id)
                    continue
                started.append(run_id)
            if page.next_cursor is None:
                return started
            cursor = page.next_cursor

    async def _resume(self, run_id: str, *, task_status: TaskStatus[None]) -> None:
        class _Started:
            @staticmethod
            def started(value: object = None) -> None:
                if not self._running:
                    self._idle = anyio.Event()
                self._running.add(run_id)
                self.resumed.append(run_id)
                task_status.started()

        try:
            record = await continue_run(
                self.host,
                run_id,
                run_store=self._run_store,
                session_store=self._session_store,
                env=self._env,
                task_status=_Started(),
            )
            _log.info("resumed run %s ended %s", run_id, record.status)
        finally:
            self._running.discard(run_id)
            if not self._running:
                self._idle.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                _log.warning("resuming interrupted runs failed; trying again", exc_info=True)
            with anyio.move_on_after(self.interval):
                await self._done.wait()
            if self._done.is_set():
                return

    async def __aenter__(self) -> Resumer:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._runs = anyio.create_task_group()
        await self._runs.__aenter__()
        self._group.start_soon(self._loop)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self._done.set()
        runs, group = self._runs, self._group
        assert runs is not None and group is not None
        if self._running:
            with anyio.move_on_after(self.grace_period, shield=True):
                await self._idle.wait()
        for run_id in list(self._running):
            interrupt_local(run_id)  # recorded interrupted even if the cancel below reaches it first
        runs.cancel_scope.cancel()
        group.cancel_scope.cancel()
        try:
            await runs.__aexit__(None, None, None)
        finally:
            self._runs = None
            await group.__aexit__(None, None, None)
            self._group = None

    async def aclose(self) -> None:
        """Stop: what :meth:`__aexit__` does, for owners that do not use ``async with``."""
        if self._group is not None:
            await self.__aexit__(None, None, None)
