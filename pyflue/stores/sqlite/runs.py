"""Workflow runs in SQLite: one row per run, and its event log in chunks of consecutive events.

Every call runs in a worker thread. Any process may read, follow, cancel and prune the runs of the
file. A run whose owner process died is marked ``interrupted`` (with a ``run_end`` event written once,
with an id later than every event of the run) by the first call of each store object, and by any read
that returns it. A read-only file is read as it is: nothing is marked.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from pydantic_core import from_json

from ...errors import ConfigError, NotFoundError, shown
from ...events import Event
from ...models.base import Usage
from ..changes import Topics, Watch
from ..liveness import own_start, owner_alive
from ..run_encoding import chunks, interrupted_end, journal_row, unpack_events
from ..run_encoding import json_bytes as _json
from ..runs import (
    JournalStep,
    RunNotInterruptedError,
    RunPage,
    RunRecord,
    decode_cursor,
    encode_cursor,
    not_resumable,
)
from .database import SQLiteDatabase, table_exists

__all__ = ["SQLiteRunStore"]

T = TypeVar("T")

_RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    payload BLOB,
    result BLOB,
    error BLOB,
    usage BLOB,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_ms REAL,
    owner_pid INTEGER,
    owner_host TEXT,
    owner_start TEXT,
    cancel_reason TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, position);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, position);
CREATE INDEX IF NOT EXISTS runs_by_end ON runs (ended_at);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    events BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_journal (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    result BLOB,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = (
    "run_id, workflow, status, payload, result, error, usage, started_at, ended_at, duration_ms, "
    "owner_pid, owner_host"
)

_MISSING: Any = object()


def _insert_events(conn: sqlite3.Connection, run_id: str, events: Sequence[Event]) -> None:
    """Rows of ``run_events``: each holds consecutive events (one flush) as a JSON array."""
    conn.executemany(
        "INSERT INTO run_events VALUES (?, ?, ?, ?)", [(run_id, *chunk) for chunk in chunks(events)]
    )


def _select_events(conn: sqlite3.Connection, run_id: str, after_seq: int, limit: int | None) -> list[Event]:
    """Events with ``seq > after_seq`` (at most ``limit``), starting at the chunk holding the
    next one."""
    rows = conn.execute(
        "SELECT events FROM run_events WHERE run_id=?1 AND seq >= coalesce("
        "(SELECT max(seq) FROM run_events WHERE run_id=?1 AND seq <= ?2 + 1), 0) ORDER BY seq LIMIT ?3",
        (run_id, after_seq, -1 if limit is None else limit),
    ).fetchall()
    events = [e for (blob,) in rows for e in unpack_events(run_id, blob) if e.seq > after_seq]
    return events if limit is None else events[:limit]


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _record(row: Sequence[Any]) -> RunRecord:
    started = _dt(row[7])
    assert started is not None
    return RunRecord(
        run_id=row[0],
        workflow=row[1],
        status=row[2],
        payload=from_json(row[3]) if row[3] is not None else None,
        result=from_json(row[4]) if row[4] is not None else None,
        error=from_json(row[5]) if row[5] is not None else None,
        usage=Usage(**from_json(row[6])) if row[6] is not None else Usage(),
        started_at=started,
        ended_at=_dt(row[8]),
        duration_ms=row[9],
        owner_pid=row[10],
        owner_host=row[11],
    )


def _mark_interrupted(conn: sqlite3.Connection, run_id: str) -> bool:
    """In a write transaction: end a ``running`` run as ``interrupted``, appending its ``run_end``
    (the next seq) so followers of its log stop. Its ``ended_at`` is its last sign of life. The
    ``run_end`` is stored like any event, so it reads the same every time; its id is a new ULID,
    later than the id of every event of the run."""
    row = conn.execute(
        "SELECT status, started_at, owner_pid, owner_host FROM runs WHERE run_id=?", (run_id,)
    ).fetchone()
    if row is None or row[0] != "running":
        return False
    events = _select_events(conn, run_id, 0, None)
    end = interrupted_end(run_id, events, row[1], row[2], row[3], events[-1].seq if events else 0)
    _insert_events(conn, run_id, [end.event])
    conn.execute(
        "UPDATE runs SET status='interrupted', error=?, ended_at=?, duration_ms=?, usage=?, "
        "cancel_reason=NULL WHERE run_id=?",
        (_json(end.error), end.ended_at, end.duration_ms, _json(end.usage), run_id),
    )
    return True


class SQLiteRunStore:
    """Runs and their complete event logs in the project's SQLite file (beside the sessions).

    Every call runs in a worker thread. Any process may read, follow, cancel and prune the runs of
    the file. The first call in a process marks the runs whose owner process died as
    ``interrupted``; reads check the owner of each ``running`` run they return, so a run whose
    process was killed is never reported ``running`` for long. Reading a file that does not exist
    yet finds no runs and creates nothing.
    """

    def __init__(self, path: str | Path | SQLiteDatabase) -> None:
        self._owns_db = not isinstance(path, SQLiteDatabase)
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase(path)
        self.db.ensure_schema("runs", _RUNS_SCHEMA)
        self._recovered = False
        self._recovering = threading.Lock()
        self._changes = Topics()  # wakes watch()ers of a run when this object writes it

    def __repr__(self) -> str:
        return f"SQLiteRunStore({str(self.db.path)!r})"

    # -- plumbing (all of it runs in a worker thread) ---------------------------------------------

    def _readable(self) -> bool:
        """Whether there are runs to read: the file exists, with the tables (a read-only file may
        hold other stores' tables only)."""
        if not self.db.exists():
            return False
        if not self.db.read_only:
            return True
        return self.db.call(lambda conn: table_exists(conn, "run_events"), write=False)

    def _in_thread(self, work: Callable[[], T], empty: Any) -> T:
        if empty is not _MISSING and not self._readable():
            return empty  # type: ignore[no-any-return]
        with self._recovering:
            first, self._recovered = not self._recovered, True
        if first:
            self._recover(None)
        return work()

    async def _go(self, work: Callable[[], T], empty: Any = _MISSING) -> T:
        return await anyio.to_thread.run_sync(self._in_thread, work, empty)

    def _recover(self, owners: Sequence[Sequence[Any]] | None) -> list[str]:
        """Mark the runs of dead owners interrupted. ``owners``: ``(run_id, pid, host, start)``
        rows to check, or ``None`` for every running run of the file. A read-only file is left as
        it is."""
        if self.db.read_only:
            return []
        if owners is None:
            owners = self.db.call(
                lambda conn: conn.execute(
                    "SELECT run_id, owner_pid, owner_host, owner_start FROM runs WHERE status='running'"
                ).fetchall(),
                write=False,
            )
        dead = [row[0] for row in owners if not owner_alive(row[1], row[2], row[3])]
        if not dead:
            return []
        return self.db.call(lambda conn: [run_id for run_id in dead if _mark_interrupted(conn, run_id)])

    def _records(self, rows: list[Sequence[Any]]) -> list[RunRecord]:
        """Records of ``_RUN_COLUMNS, owner_start`` rows, after reaping dead owners among them."""
        owners = [(r[0], r[10], r[11], r[12]) for r in rows if r[2] == "running"]
        if owners and self._recover(owners):
            ids = [r[0] for r in rows]
            marks = ", ".join("?" * len(ids))
            sql = f"SELECT {_RUN_COLUMNS}, owner_start FROM runs WHERE run_id IN ({marks})"
            fresh = {r[0]: r for r in self.db.call(lambda conn: conn.execute(sql, ids).fetchall(), False)}
            rows = [fresh.get(r[0], r) for r in rows]
        return [_record(row) for row in rows]

    # -- the RunStore protocol ---------------------------------------------------------------------

    async def create_run(self, record: RunRecord) -> None:
        row = (
            record.run_id,
            record.workflow,
            record.status,
            _json(record.payload),
            None if record.result is None else _json(record.result),
            None if record.error is None else _json(record.error),
            _json(record.usage.to_dict()),
            record.started_at.timestamp(),
            _ts(record.ended_at),
            record.duration_ms,
            record.owner_pid,
            record.owner_host,
        )
        sql = f"INSERT INTO runs ({_RUN_COLUMNS}, owner_start) VALUES ({', '.join('?' * (len(row) + 1))})"

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM runs WHERE run_id=?", (record.run_id,)).fetchone():
                raise ConfigError(f"run id {record.run_id!r} already exists; pick another or leave it out")
            start = own_start() if record.owner_pid == os.getpid() else None
            conn.execute(sql, (*row, start))

        await self._go(lambda: self.db.call(write))

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        if not events:
            return
        batch = list(events)

        def write(conn: sqlite3.Connection) -> None:
            _insert_events(conn, run_id, batch)

        await self._go(lambda: self.db.call(write))
        self._changes.touch(run_id)

    async def finish_run(self, record: RunRecord, events: Sequence[Event] = ()) -> None:
        batch = list(events)
        values = (
            record.status,
            None if record.result is None else _json(record.result),
            None if record.error is None else _json(record.error),
            _json(record.usage.to_dict()),
            _ts(record.ended_at),
            record.duration_ms,
            record.run_id,
        )

        def write(conn: sqlite3.Connection) -> None:
            _insert_events(conn, record.run_id, batch)
            conn.execute(
                "UPDATE runs SET status=?, result=?, error=?, usage=?, ended_at=?, duration_ms=?, "
                "cancel_reason=NULL WHERE run_id=?",
                values,
            )

        await self._go(lambda: self.db.call(write))
        self._changes.touch(record.run_id)

    async def get_run(self, run_id: str) -> RunRecord | None:
        sql = f"SELECT {_RUN_COLUMNS}, owner_start FROM runs WHERE run_id=?"

        def work() -> list[RunRecord]:
            return self._records(self.db.call(lambda conn: conn.execute(sql, (run_id,)).fetchall(), False))

        runs = await self._go(work, empty=[])
        return runs[0] if runs else None

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        where: list[str] = []
        args: list[Any] = []
        if workflow is not None:
            where.append("workflow=?")
            args.append(workflow)
        if status is not None:
            where.append("status=?")
            args.append(status)
        if cursor is not None:
            where.append("position<?")
            args.append(decode_cursor(cursor))
        size = max(limit, 1)
        args.append(size + 1)
        sql = (
            f"SELECT {_RUN_COLUMNS}, owner_start, position FROM runs"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY position DESC LIMIT ?"
        )

        def work() -> RunPage:
            rows = self.db.call(lambda conn: conn.execute(sql, args).fetchall(), False)
            more = len(rows) > size
            rows = rows[:size]
            records = self._records([row[:13] for row in rows])
            return RunPage(records, encode_cursor(rows[-1][13]) if more else None)

        return await self._go(work, empty=RunPage([]))

    async def read_events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        def read(conn: sqlite3.Connection) -> list[Event]:
            return _select_events(conn, run_id, after_seq, limit)

        return await self._go(lambda: self.db.call(read, False), empty=[])

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no run {shown(run_id)} in {self.db.path}")
            if row[0] != "running":
                return False
            conn.execute("UPDATE runs SET cancel_reason=? WHERE run_id=?", (reason, run_id))
            return True

        def work() -> bool:
            if self.db.path.exists():
                self._records(
                    self.db.call(
                        lambda conn: conn.execute(
                            f"SELECT {_RUN_COLUMNS}, owner_start FROM runs WHERE run_id=?", (run_id,)
                        ).fetchall(),
                        False,
                    )
                )  # a run whose owner died is interrupted, not cancellable
            return self.db.call(write)

        if not await anyio.to_thread.run_sync(self.db.path.exists):
            raise NotFoundError(f"no run {shown(run_id)}: {self.db.path} does not exist")
        return await self._go(work)

    async def heartbeat(self, run_id: str) -> str | None:
        """Ownership here is by process liveness, not lease: a heartbeat only reads cancel requests."""
        return await self.cancel_requested(run_id)

    async def cancel_requested(self, run_id: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT cancel_reason FROM runs WHERE run_id=?", (run_id,)).fetchone()
            return row[0] if row is not None else None

        return await self._go(lambda: self.db.call(read, False))

    async def prune_runs(self, older_than: float) -> int:
        cutoff = time.time() - older_than

        def write(conn: sqlite3.Connection) -> int:
            doomed = [
                row[0]
                for row in conn.execute(
                    "SELECT run_id FROM runs WHERE status!='running' AND ended_at<?", (cutoff,)
                ).fetchall()
            ]
            for start in range(0, len(doomed), 500):
                chunk = doomed[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                conn.execute(f"DELETE FROM run_events WHERE run_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM run_journal WHERE run_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk)
            return len(doomed)

        return await self._go(lambda: self.db.call(write), empty=0)

    # -- the journal of resumable runs ---------------------------------------------------------------

    async def record_step(self, run_id: str, step: JournalStep, events: Sequence[Event] = ()) -> None:
        row = journal_row(run_id, step)

        batch = list(events)

        def write(conn: sqlite3.Connection) -> None:
            _insert_events(conn, run_id, batch)
            conn.execute("INSERT OR REPLACE INTO run_journal VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

        await self._go(lambda: self.db.call(write))
        if batch:
            self._changes.touch(run_id)

    async def read_journal(self, run_id: str) -> list[JournalStep]:
        def read(conn: sqlite3.Connection) -> list[JournalStep]:
            if not table_exists(conn, "run_journal"):
                return []
            rows = conn.execute(
                "SELECT step, position, kind, name, fingerprint, status, result FROM run_journal "
                "WHERE run_id=? ORDER BY position",
                (run_id,),
            ).fetchall()
            return [
                JournalStep(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else from_json(r[6]))
                for r in rows
            ]

        return await self._go(lambda: self.db.call(read, False), empty=[])

    async def reopen_run(self, run_id: str, owner_pid: int | None, owner_host: str | None) -> RunRecord:
        sql = f"SELECT {_RUN_COLUMNS}, owner_start FROM runs WHERE run_id=?"

        def write(conn: sqlite3.Connection) -> RunRecord:
            rows = conn.execute(sql, (run_id,)).fetchall()
            if not rows:
                raise NotFoundError(f"no run {shown(run_id)} in {self.db.path}")
            record = _record(rows[0])
            if record.status != "interrupted":
                raise RunNotInterruptedError(not_resumable(record))
            start = own_start() if owner_pid == os.getpid() else None
            conn.execute(
                "UPDATE runs SET status='running', error=NULL, ended_at=NULL, duration_ms=NULL, "
                "owner_pid=?, owner_host=?, owner_start=?, cancel_reason=NULL WHERE run_id=?",
                (owner_pid, owner_host, start, run_id),
            )
            return record

        def work() -> RunRecord:
            # A run whose owner died moments ago may still read `running`: mark it first.
            self._records(self.db.call(lambda conn: conn.execute(sql, (run_id,)).fetchall(), False))
            return self.db.call(write)

        if not await anyio.to_thread.run_sync(self.db.path.exists):
            raise NotFoundError(f"no run {shown(run_id)}: {self.db.path} does not exist")
        return await self._go(work)

    async def recover_interrupted(self) -> list[str]:
        return await self._go(lambda: self._recover(None), empty=[])

    # -- lifetime ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the database if this store opened it (not one it was given)."""
        if self._owns_db:
            await self.db.aclose()

    async def __aenter__(self) -> SQLiteRunStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()

    # -- following -----------------------------------------------------------------------------------

    #: Seconds between a watch's checks for commits of other connections (other processes).
    watch_poll = 0.05

    async def watch(self, run_id: str) -> Watch:
        """A watch of ``run_id``: woken at once by this store object's writes, and within
        :attr:`watch_poll` seconds by any other connection's commit to the file (another process, or
        another store object; ``PRAGMA data_version`` moves), which may concern another run (a
        spurious wake-up: the follower reads again and finds nothing new)."""

        def version(conn: sqlite3.Connection) -> object:
            return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

        async def probe() -> object:
            return await self._go(lambda: self.db.call(version, False), empty=None)

        return self._changes.watch(run_id, probe=probe, poll=self.watch_poll, probed=await probe())
