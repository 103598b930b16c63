"""SQLite storage: one file (``.pyflue/pyflue.db`` in a project), WAL mode, stdlib ``sqlite3``.

Every statement runs in a worker thread so the event loop never blocks on disk. One connection per
database file, guarded by a lock, serves all stores of a process (sessions, runs, dispatch); other
processes open the same file concurrently (WAL lets readers and one writer proceed together).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from ..errors import StoreError
from ..models.messages import MESSAGES_ADAPTER
from .base import SessionKey, StoredMessage

__all__ = ["SQLiteDatabase", "SQLiteSessionStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    agent TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (agent, instance_id, session_id, seq)
) WITHOUT ROWID;
"""


class SQLiteDatabase:
    """A SQLite file shared by the stores; ``await db.run(fn)`` calls ``fn(connection)`` in a
    worker thread inside a transaction (committed on return, rolled back on error)."""

    _open: dict[str, SQLiteDatabase] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._schemas: dict[str, str] = {}
        self._applied: set[str] = set()

    @classmethod
    def for_path(cls, path: str | Path) -> SQLiteDatabase:
        """The process-wide database object of a file (one connection per file)."""
        key = str(Path(path).resolve())
        with cls._open_lock:
            db = cls._open.get(key)
            if db is None:
                db = cls._open[key] = cls(key)
            return db

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def ensure_schema(self, name: str, sql: str) -> None:
        """Register idempotent DDL; it runs (in a worker thread) before the first statement."""
        self._schemas.setdefault(name, sql)

    def call(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction, in the calling thread. Writers take the write lock up
        front (``BEGIN IMMEDIATE``) so they never fail half-way on a busy database."""
        with self._lock:
            try:
                conn = self._connect()
                for name, sql in self._schemas.items():
                    if name not in self._applied:
                        conn.executescript(sql)
                        self._applied.add(name)
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(
                    f"SQLite store {self.path} failed: {exc}; check the file and free disk space"
                ) from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        return await anyio.to_thread.run_sync(self.call, fn, write)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._applied.clear()


def _encode(message: StoredMessage) -> bytes:
    return MESSAGES_ADAPTER.dump_json([message], exclude_none=True)


class SQLiteSessionStore:
    """Append-only message rows: a turn inserts only its new messages.

    One object per database file in a process (``SQLiteSessionStore(path)`` returns it again), so
    harnesses opened with separate store objects on one file still take turns on a session and
    share its history: sessions are identified by their store object.
    """

    _instances: weakref.WeakValueDictionary[tuple[type, int], SQLiteSessionStore] = (
        weakref.WeakValueDictionary()
    )

    def __new__(cls, path: str | Path | SQLiteDatabase) -> SQLiteSessionStore:
        db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase.for_path(path)
        with SQLiteDatabase._open_lock:
            store = cls._instances.get((cls, id(db)))
            if store is None:
                store = cls._instances[(cls, id(db))] = super().__new__(cls)
        return store

    def __init__(self, path: str | Path | SQLiteDatabase) -> None:
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase.for_path(path)
        self.db.ensure_schema("messages", _SCHEMA)

    async def load(self, key: SessionKey) -> list[StoredMessage]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT data FROM messages WHERE agent=? AND instance_id=? AND session_id=? ORDER BY seq", key
            ).fetchall()

        rows = await self.db.run(read, write=False)
        if not rows:
            return []
        return MESSAGES_ADAPTER.validate_json(b"[" + b",".join(bytes(r[0])[1:-1] for r in rows) + b"]")

    async def append(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        blobs = [_encode(m) for m in messages]

        def write(conn: sqlite3.Connection) -> None:
            (last,) = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE agent=? AND instance_id=? AND session_id=?",
                key,
            ).fetchone()
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                [(*key, last + i + 1, blob) for i, blob in enumerate(blobs)],
            )

        await self.db.run(write)

    async def replace(self, key: SessionKey, messages: Sequence[StoredMessage]) -> None:
        blobs = [_encode(m) for m in messages]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE agent=? AND instance_id=? AND session_id=?", key)
            conn.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [(*key, i + 1, b) for i, b in enumerate(blobs)]
            )

        await self.db.run(write)

    async def delete(self, key: SessionKey) -> None:
        await self.db.run(
            lambda conn: conn.execute(
                "DELETE FROM messages WHERE agent=? AND instance_id=? AND session_id=?", key
            ).fetchall()
        )

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT DISTINCT session_id FROM messages WHERE agent=? AND instance_id=? "
                "ORDER BY session_id",
                (agent, instance_id),
            ).fetchall(),
            write=False,
        )
        return [r[0] for r in rows]


# -- workflow runs ---------------------------------------------------------------------------------
# Appended for workflow runs (issue #6); see docs/workflows.md.

import functools  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from pydantic_core import from_json, to_json  # noqa: E402

from ..errors import ConfigError, NotFoundError  # noqa: E402
from ..models.base import Usage  # noqa: E402
from .base import RunPage, RunRecord, decode_cursor, encode_cursor, interrupted_error  # noqa: E402

if TYPE_CHECKING:
    from ..events import Event

__all__ += ["SQLiteRunStore"]

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
"""

_RUN_COLUMNS = (
    "run_id, workflow, status, payload, result, error, usage, started_at, ended_at, duration_ms, "
    "owner_pid, owner_host"
)

_MISSING: Any = object()

# Database files whose interrupted runs this process has recovered already (once per file).
_recovered: set[str] = set()
_recovered_lock = threading.Lock()


def _json(value: Any) -> bytes:
    """JSON that never fails: unknown objects become their ``repr`` (events hold user data)."""
    return to_json(value, fallback=repr, inf_nan_mode="null", bytes_mode="base64")


#: Events per stored chunk at most (a flush writes one chunk or a few).
_CHUNK = 1024


def _pack(event: Event) -> list[Any]:
    """An event as a compact JSON row. The raw id (an int) and timestamp (a float) are stored as
    the bus made them: encoding a ULID string and an ISO date costs more than the rest of a write,
    and ``Event`` encodes them lazily when a reader asks. (Private fields of ``Event``, read on
    purpose: both are part of ``pyflue``.)"""
    return [
        event.seq,
        event.type,
        event._id,
        event._ts,
        event.agent,
        event.instance_id,
        event.session_id,
        event.operation_id,
        event.parent_id,
        event.data,
    ]


def _chunks(run_id: str, events: Sequence[Event]) -> list[tuple[str, int, int, bytes]]:
    """Rows of ``run_events``: each holds consecutive events (one flush) as a JSON array, so a
    write costs one row per batch instead of one per event."""
    return [
        (run_id, part[0].seq, part[-1].seq, _json([_pack(e) for e in part]))
        for part in (events[i : i + _CHUNK] for i in range(0, len(events), _CHUNK))
    ]


def _unpack(run_id: str, blob: bytes) -> list[Event]:
    from ..events import Event

    return [
        Event(r[1], r[9], r[0], run_id, r[4], r[5], r[6], r[7], r[8], event_id=r[2], ts=r[3])
        for r in from_json(blob)
    ]


def _insert_events(conn: sqlite3.Connection, run_id: str, events: Sequence[Event]) -> None:
    conn.executemany("INSERT INTO run_events VALUES (?, ?, ?, ?)", _chunks(run_id, events))


def _select_events(conn: sqlite3.Connection, run_id: str, after_seq: int, limit: int | None) -> list[Event]:
    """Events with ``seq > after_seq`` (at most ``limit``), starting at the chunk holding the
    next one."""
    rows = conn.execute(
        "SELECT events FROM run_events WHERE run_id=?1 AND seq >= coalesce("
        "(SELECT max(seq) FROM run_events WHERE run_id=?1 AND seq <= ?2 + 1), 0) ORDER BY seq LIMIT ?3",
        (run_id, after_seq, -1 if limit is None else limit),
    ).fetchall()
    events = [e for (blob,) in rows for e in _unpack(run_id, blob) if e.seq > after_seq]
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


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of a process from ``/proc`` (Linux), or ``None`` where unavailable.
    The start time tells a reused pid from the process that recorded a run."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


@functools.cache
def _own_start() -> str | None:
    """This process's start time (see :func:`_proc_stat`); read once, in a worker thread."""
    stat = _proc_stat(os.getpid())
    return stat[1] if stat is not None else None


def _owner_alive(pid: int | None, host: str | None, start: str | None) -> bool:
    """Whether the process that owns a run may still be running it. Only processes on this host
    can be checked; a run owned elsewhere is presumed alive (SQLite files are not shared across
    hosts anyway)."""
    if pid is None or host != _hostname():
        return True
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        if state == "Z" or (start is not None and started != start):
            return False  # a zombie, or the pid now belongs to another process
    return True


def _windows_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return bool(code.value == 259)  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _mark_interrupted(conn: sqlite3.Connection, run_id: str) -> bool:
    """In a write transaction: end a ``running`` run as ``interrupted``, appending its ``run_end``
    (the next seq) so followers of its log stop. Its ``ended_at`` is its last sign of life."""
    from ..events import Event

    row = conn.execute(
        "SELECT status, started_at, owner_pid, owner_host FROM runs WHERE run_id=?", (run_id,)
    ).fetchone()
    if row is None or row[0] != "running":
        return False
    started_at, pid, host = row[1], row[2], row[3]
    events = _select_events(conn, run_id, 0, None)
    last_seq = events[-1].seq if events else 0
    ended_at = max(started_at, events[-1].timestamp) if events else started_at
    usage = Usage()
    for event in events:
        spent = event.data.get("usage") if event.type == "model_end" else None
        if spent:
            usage = usage + Usage(**spent)
    error = interrupted_error(pid, host)
    duration_ms = round((ended_at - started_at) * 1000, 3)
    end = Event(
        "run_end",
        {"status": "interrupted", "error": error, "duration_ms": duration_ms, "usage": usage.to_dict()},
        last_seq + 1,
        run_id,
    )
    _insert_events(conn, run_id, [end])
    conn.execute(
        "UPDATE runs SET status='interrupted', error=?, ended_at=?, duration_ms=?, usage=?, "
        "cancel_reason=NULL WHERE run_id=?",
        (_json(error), ended_at, duration_ms, _json(usage.to_dict()), run_id),
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
        self.db = path if isinstance(path, SQLiteDatabase) else SQLiteDatabase.for_path(path)
        self.db.ensure_schema("runs", _RUNS_SCHEMA)

    # -- plumbing (all of it runs in a worker thread) ---------------------------------------------

    def _in_thread(self, work: Callable[[], T], empty: Any) -> T:
        if empty is not _MISSING and not self.db.path.exists():
            return empty  # type: ignore[no-any-return]
        key = str(self.db.path)
        with _recovered_lock:
            first = key not in _recovered
            _recovered.add(key)
        if first:
            self._recover(None)
        return work()

    async def _go(self, work: Callable[[], T], empty: Any = _MISSING) -> T:
        return await anyio.to_thread.run_sync(self._in_thread, work, empty)

    def _recover(self, owners: Sequence[Sequence[Any]] | None) -> list[str]:
        """Mark the runs of dead owners interrupted. ``owners``: ``(run_id, pid, host, start)``
        rows to check, or ``None`` for every running run of the file."""
        if owners is None:
            owners = self.db.call(
                lambda conn: conn.execute(
                    "SELECT run_id, owner_pid, owner_host, owner_start FROM runs WHERE status='running'"
                ).fetchall(),
                write=False,
            )
        dead = [row[0] for row in owners if not _owner_alive(row[1], row[2], row[3])]
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
            start = _own_start() if record.owner_pid == os.getpid() else None
            conn.execute(sql, (*row, start))

        await self._go(lambda: self.db.call(write))

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        if not events:
            return
        batch = list(events)

        def write(conn: sqlite3.Connection) -> None:
            _insert_events(conn, run_id, batch)

        await self._go(lambda: self.db.call(write))

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
                raise NotFoundError(f"no run {run_id!r} in {self.db.path}")
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
            raise NotFoundError(f"no run {run_id!r}: {self.db.path} does not exist")
        return await self._go(work)

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
                conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk)
            return len(doomed)

        return await self._go(lambda: self.db.call(write), empty=0)

    async def recover_interrupted(self) -> list[str]:
        return await self._go(lambda: self._recover(None), empty=[])
