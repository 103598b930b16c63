"""The run store from anywhere: list, inspect, follow, cancel and prune workflow runs.

These are the functions ``pyflue runs``, ``pyflue logs`` and the HTTP routes are built on. Each
takes the store to use as ``store=`` (any :class:`~pyflue.stores.runs.RunStore`) or ``project=``
(a :class:`~pyflue.project.Project`, or a project directory); with neither, the project in the
current directory, i.e. ``./.pyflue/pyflue.db``. They work from any process: the SQLite store is
shared, runs started elsewhere are visible, and a cancel request reaches the process running the
run. Reading a project that has no database yet finds no runs and creates nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from pathlib import Path

from .errors import ConfigError, NotFoundError, shown
from .events import Event
from .project import DB_PATH, Project
from .runtime import current_runtime
from .stores.changes import Watch
from .stores.runs import RUN_STATUSES, RunPage, RunRecord, RunStore
from .workflow import cancel_local

__all__ = ["cancel_run", "get_run", "iter_events", "list_runs", "prune_runs", "run_store"]

_PAGE = 1_000  # events read per query


def run_store(
    store: RunStore | None = None, project: Project | str | os.PathLike[str] | None = None
) -> RunStore:
    """The store the functions below use: ``store``, else ``project``'s, else the current
    directory's ``.pyflue/pyflue.db``. Only the database is opened; no project code is imported."""
    if store is not None:
        return store
    if isinstance(project, Project):
        return project.run_store
    return current_runtime().sqlite_run_store(
        Path.cwd() / DB_PATH if project is None else Path(project) / DB_PATH
    )


async def list_runs(
    *,
    workflow: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    store: RunStore | None = None,
    project: Project | str | os.PathLike[str] | None = None,
) -> RunPage:
    """Runs newest first (``page.runs``), optionally of one ``workflow`` and/or ``status``.

    For the next page pass ``cursor=page.next_cursor`` (``None`` on the last page). Cursors are
    opaque and stable: runs started meanwhile never shift a page or appear twice.
    """
    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    return await run_store(store, project).list_runs(
        workflow=workflow, status=status, limit=limit, cursor=cursor
    )


async def get_run(
    run_id: str, *, store: RunStore | None = None, project: Project | str | os.PathLike[str] | None = None
) -> RunRecord:
    """The run's record; ``NotFoundError`` when there is no such run."""
    record = await run_store(store, project).get_run(run_id)
    if record is None:
        raise NotFoundError(f"no run {shown(run_id)}")
    return record


async def iter_events(
    run_id: str,
    *,
    after_seq: int = 0,
    types: Iterable[str] | None = None,
    follow: bool = True,
    poll_interval: float = 0.1,
    store: RunStore | None = None,
    project: Project | str | os.PathLike[str] | None = None,
) -> AsyncIterator[Event]:
    """The run's events with ``seq > after_seq``, in order (only ``types``, when given).

    With ``follow`` (the default) it waits for new events, woken by the store's ``watch`` (at a
    commit from any process on PostgreSQL, from this process at once and others within a bounded
    poll on SQLite) and reading again at least every ``poll_interval`` seconds. It ends after the
    run's ``run_end``: it always terminates, also for a run whose process died (the store marks it
    ``interrupted`` and appends its ``run_end``) or that is pruned meanwhile. Without ``follow`` it
    yields what is stored now. An unknown ``run_id`` raises ``NotFoundError`` at the first iteration.
    """
    source = run_store(store, project)
    wanted = frozenset(types) if types is not None else None
    if await source.get_run(run_id) is None:
        raise NotFoundError(f"no run {shown(run_id)}")
    last = after_seq
    watch = await source.watch(run_id) if follow else None
    try:
        async for event in _follow(source, run_id, last, wanted, follow, poll_interval, watch):
            yield event
    finally:
        if watch is not None:
            watch.close()


async def _follow(
    source: RunStore,
    run_id: str,
    last: int,
    wanted: frozenset[str] | None,
    follow: bool,
    poll_interval: float,
    watch: Watch | None,
) -> AsyncIterator[Event]:
    settled = False  # the record was final: one more read gets every event
    while True:
        batch = await source.read_events(run_id, after_seq=last, limit=_PAGE)
        for event in batch:
            last = event.seq
            if wanted is None or event.type in wanted:
                yield event
            if event.type == "run_end":
                return
        if len(batch) == _PAGE:
            continue
        if not follow or settled:
            return
        record = await source.get_run(run_id)
        if record is None:
            return  # pruned while we followed it
        if record.finished:
            settled = True
            continue
        if watch is not None:
            await watch.wait(poll_interval)


async def cancel_run(
    run_id: str,
    *,
    reason: str = "cancelled by request",
    store: RunStore | None = None,
    project: Project | str | os.PathLike[str] | None = None,
) -> bool:
    """Ask for a running run to be cancelled, from any process; it ends ``cancelled`` with
    ``reason`` once its process sees the request (within its poll interval, at once in this
    process). True if the request was made, False when the run is no longer running;
    ``NotFoundError`` for an unknown run."""
    requested = await run_store(store, project).request_cancel(run_id, reason)
    if requested:
        cancel_local(run_id, reason)
    return requested


async def prune_runs(
    older_than: timedelta | float,
    *,
    store: RunStore | None = None,
    project: Project | str | os.PathLike[str] | None = None,
) -> int:
    """Delete finished runs, with their event logs, that ended more than ``older_than`` ago (a
    ``timedelta`` or seconds); returns how many. Running runs are kept whatever their age."""
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
    if seconds < 0:
        raise ConfigError(f"older_than must not be negative, got {older_than!r}")
    return await run_store(store, project).prune_runs(seconds)
