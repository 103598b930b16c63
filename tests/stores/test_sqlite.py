"""The SQLite stores beyond the contract: append-only rows, lifetimes, many processes on one file
(real subprocesses in tests/stores/_scripts/), read-only files, errors that say what happened, and
work kept off the event loop."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue import define_tool, init
from pyflue.errors import InvalidIdError, StoreError
from pyflue.events import Event
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    text_of,
)
from pyflue.models.testing import FunctionModel
from pyflue.stores import sessions as session_codec
from pyflue.stores.liveness import hostname
from pyflue.stores.runs import RunRecord
from pyflue.stores.sessions import SessionKey, SessionStore, StoredHistory, StoredMessage
from pyflue.stores.sqlite import SQLiteDatabase, SQLiteRunStore, SQLiteSessionStore
from pyflue.stores.sqlite import sessions as sqlite_sessions

SCRIPT = Path(__file__).parent / "_scripts" / "store_process.py"
ROOT = Path(__file__).resolve().parents[2]
KEY = SessionKey("agent", "instance", "shared")


def said(text: str) -> list[StoredMessage]:
    return [UserMessage([TextPart(text)])]


def rows(db: Path) -> list[tuple[str, str, str, int, bytes]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY agent, instance_id, session_id, seq").fetchall()


def env() -> dict[str, str]:
    made = {**os.environ, "PYTHONPATH": str(ROOT)}
    made.pop("PYFLUE_MODEL", None)
    return made


def script(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out.splitlines()[-1]))


def start_together(processes: list[subprocess.Popen[str]], ready: list[Path], go: Path) -> None:
    """Let the processes go at once, when every one of them has started."""
    for _ in range(12_000):  # two minutes at most
        if all(path.exists() for path in ready):
            break
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(process.communicate()[1][-3000:])
        threading.Event().wait(0.01)
    else:
        raise AssertionError("the processes did not start")
    go.touch()


# -- append-only writes, moved from the per-turn tests of the agent -------------------------------


class Spy:
    """Wraps a store and records the calls that read or write messages."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []

    async def load(self, key: SessionKey) -> StoredHistory:
        self.calls.append(("load", 0))
        return await self.inner.load(key)

    async def append(
        self,
        key: SessionKey,
        batch: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        self.calls.append(("append", len(batch)))
        return await self.inner.append(key, batch, expected=expected, release=release)

    async def replace(
        self,
        key: SessionKey,
        batch: Sequence[StoredMessage],
        *,
        expected: int | None = None,
        release: str | None = None,
    ) -> int:
        self.calls.append(("replace", len(batch)))
        return await self.inner.replace(key, batch, expected=expected, release=release)

    async def delete(self, key: SessionKey) -> None:
        await self.inner.delete(key)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        return await self.inner.list_sessions(agent, instance_id)

    async def list_instances(
        self, agent: str, *, limit: int | None = None, after: str | None = None
    ) -> list[str]:
        return await self.inner.list_instances(agent, limit=limit, after=after)

    async def acquire(self, key: SessionKey, owner: str, ttl: float) -> int | None:
        return await self.inner.acquire(key, owner, ttl)

    async def release(self, key: SessionKey, owner: str) -> None:
        await self.inner.release(key, owner)

    async def aclose(self) -> None:
        await self.inner.aclose()


@define_tool
def note(text: str) -> str:
    """Write a note."""
    return f"noted {text}"


def note_then_answer(request: ModelRequest) -> ModelResponse | str:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    if isinstance(last.parts[0], ToolResultPart):
        return "answered"
    return ModelResponse(
        [ToolCallPart(f"c{len(request.messages)}", "note", {"text": "x"})], Usage(requests=1)
    )


async def test_a_turn_writes_only_its_new_messages(tmp_path: Path) -> None:
    db = tmp_path / "pyflue.db"
    spy = Spy(SQLiteSessionStore(db))
    harness = await init(model=FunctionModel(note_then_answer), tools=[note], session_store=spy)
    session = await harness.session()
    before: list[tuple[str, str, str, int, bytes]] = []
    for prompt in ("one", "two", "three"):
        await session.prompt(prompt)
        after = rows(db)
        assert after[: len(before)] == before  # earlier rows untouched, byte for byte
        assert len(after) - len(before) == 4  # prompt, tool call, tool result, answer
        assert [r[3] for r in after] == list(range(1, len(after) + 1))
        before = after
    assert [call for call in spy.calls if call[0] == "load"] == [("load", 0)]
    # Per prompt: (prompt, call) before the tool runs, (result), then (answer) with the turn's release.
    assert [call for call in spy.calls if call[0] != "load"] == [
        ("append", 2),
        ("append", 1),
        ("append", 1),
    ] * 3
    assert [json.loads(r[4])[0]["role"] for r in before[:4]] == ["user", "assistant", "user", "assistant"]
    await spy.aclose()


async def test_history_is_identical_after_reload(tmp_path: Path) -> None:
    db = tmp_path / "pyflue.db"
    async with SQLiteSessionStore(db) as store:
        harness = await init(model=FunctionModel(note_then_answer), tools=[note], session_store=store)
        session = await harness.session("s")
        await session.prompt([TextPart("look"), ImagePart("image/png", data=b"\x00\x01")])
    async with SQLiteSessionStore(db) as again:
        fresh = await init(model="test", session_store=again)
        assert (await fresh.session("s")).history == session.history


async def test_a_long_history_round_trips_across_decode_slices(tmp_path: Path) -> None:
    history = [
        UserMessage([TextPart(f"q{i}")]) if i % 2 == 0 else AssistantMessage([TextPart(f"a{i}")])
        for i in range(3 * session_codec.DECODE_SLICE + 7)
    ]
    async with SQLiteSessionStore(tmp_path / "pyflue.db") as store:
        for start in range(0, len(history), 100):
            await store.append(KEY, history[start : start + 100])
        assert await store.load(KEY) == history


# -- ids are data, never paths ---------------------------------------------------------------------


def files_under(path: Path) -> set[str]:
    return {p.name for p in path.rglob("*")}


async def test_hostile_ids_are_distinct_sessions_and_never_touch_paths(tmp_path: Path) -> None:
    home = tmp_path / "project"
    home.mkdir()
    db = home / "pyflue.db"
    hostile = ["..", "a/b", "a_b", "../../outside", "/etc/passwd", "a\\b", "C:\\x", ".", "~"]
    echo = FunctionModel(lambda request: "echo: " + text_of(request.messages[-1]))
    async with SQLiteSessionStore(db) as store:
        for instance_id in ("..", "a/b"):
            harness = await init(model=echo, id=instance_id, session_store=store)
            for session_id in hostile:
                await (await harness.session(session_id)).prompt(f"{instance_id}|{session_id}")
    async with SQLiteSessionStore(db) as store:
        for instance_id in ("..", "a/b"):
            harness = await init(model=echo, id=instance_id, session_store=store)
            assert await store.list_sessions("agent", instance_id) == sorted(hostile)
            for session_id in hostile:
                history = (await harness.session(session_id)).history
                assert [text_of(m) for m in history] == [
                    f"{instance_id}|{session_id}",
                    f"echo: {instance_id}|{session_id}",
                ]
    assert files_under(tmp_path) == {"project", *files_under(home)}
    assert files_under(home) <= {"pyflue.db", "pyflue.db-wal", "pyflue.db-shm"}


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "\x1b[31mred", "tab\t", "del\x7f"])
async def test_control_characters_are_invalid_ids(bad: str, tmp_path: Path) -> None:
    async with SQLiteSessionStore(tmp_path / "pyflue.db") as store:
        with pytest.raises(InvalidIdError, match="control characters"):
            await init(model="test", id=bad, session_store=store)
        harness = await init(model="test", session_store=store)
        with pytest.raises(InvalidIdError, match="control characters"):
            await harness.session(bad)
    assert not (tmp_path / "pyflue.db").exists() or rows(tmp_path / "pyflue.db") == []


# -- lifetimes -------------------------------------------------------------------------------------


async def test_a_store_closes_the_database_it_opened_and_not_one_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "pyflue.db"
    async with SQLiteSessionStore(path) as own:
        await own.append(KEY, said("one"))
    with pytest.raises(StoreError, match="closed"):
        await own.load(KEY)

    async with SQLiteDatabase(path) as db:
        sessions, runs = SQLiteSessionStore(db), SQLiteRunStore(db)
        assert sessions.db is runs.db is db
        await sessions.aclose()
        await runs.aclose()
        assert [text_of(m) for m in await SQLiteSessionStore(db).load(KEY)] == ["one"]  # still open
        assert (await runs.list_runs()).runs == []
    with pytest.raises(StoreError, match="closed"):
        await sessions.load(KEY)


async def test_reading_a_missing_file_finds_nothing_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "pyflue.db"
    async with SQLiteSessionStore(path) as sessions, SQLiteRunStore(path) as runs:
        assert await sessions.load(KEY) == [] and (await sessions.load(KEY)).version == 0
        assert await sessions.list_sessions("agent", "instance") == []
        assert (await runs.list_runs()).runs == [] and await runs.get_run("workflow:x:y") is None
        assert await runs.read_events("workflow:x:y") == []
    assert not (tmp_path / "nothing").exists()


# -- many processes on one file --------------------------------------------------------------------


def test_processes_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Sixteen processes make their first use of the same fresh files at the same moment: switching
    a new file to WAL mode must wait for the others instead of failing with 'database is locked'."""
    count, rounds = 16, 4
    ready = [tmp_path / f"ready-{i}" for i in range(count)]
    go = tmp_path / "go"
    processes = [script("fresh", str(tmp_path), str(rounds), str(ready[i]), str(go)) for i in range(count)]
    start_together(processes, ready, go)
    outcomes = [result(p) for p in processes]
    assert outcomes == [{"ok": True}] * count
    for i in range(rounds):
        with sqlite3.connect(tmp_path / f"fresh-{i}.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            sessions = conn.execute("SELECT DISTINCT session_id FROM messages").fetchall()
        assert len(sessions) == count


async def test_opening_a_file_another_connection_is_writing_waits_for_it(tmp_path: Path) -> None:
    """Switching a file to WAL mode while another connection holds its write lock is a conflict
    SQLite reports at once, without waiting: the store waits and retries instead of failing."""
    path = tmp_path / "pyflue.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE unrelated (x)")  # a new file, still in rollback-journal mode
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO unrelated VALUES (1)")
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        async with SQLiteSessionStore(path) as store:
            assert await store.append(KEY, said("waited")) == 1
            assert [text_of(m) for m in await store.load(KEY)] == ["waited"]
    finally:
        timer.join()
        other.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_processes_take_turns_on_one_session(tmp_path: Path) -> None:
    """Three processes race for one session's lease: every turn sees every earlier turn, the turns
    never overlap, and no fenced write is refused."""
    db = tmp_path / "pyflue.db"
    count, turns = 3, 8
    ready = [tmp_path / f"ready-{i}" for i in range(count)]
    go = tmp_path / "go"
    processes = [script("race", str(db), str(turns), str(ready[i]), str(go)) for i in range(count)]
    start_together(processes, ready, go)
    outcomes = [result(p) for p in processes]

    held = sorted(span for outcome in outcomes for span in outcome["held"])
    assert len(held) == count * turns
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(held))

    async def read() -> StoredHistory:
        async with SQLiteSessionStore(db) as store:
            return await store.load(KEY)

    history = anyio.run(read)
    assert [int(text_of(m).rsplit(" ", 1)[1]) for m in history] == list(range(count * turns))
    assert {text_of(m).split(" ")[0] for m in history} == {outcome["owner"] for outcome in outcomes}


# -- read-only files -------------------------------------------------------------------------------


async def make_database(path: Path) -> str:
    """A database with one session and one finished run; the run's id."""
    run = RunRecord(
        run_id="workflow:flow:1",
        workflow="flow",
        status="running",
        started_at=datetime.now(UTC),
        owner_pid=os.getpid(),
        owner_host=hostname(),
    )
    async with SQLiteDatabase(path) as db:
        await SQLiteSessionStore(db).append(KEY, said("kept"))
        runs = SQLiteRunStore(db)
        await runs.create_run(run)
        done = run.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)})
        await runs.finish_run(
            done, [Event("run_start", {}, 1, run.run_id), Event("run_end", {}, 2, run.run_id)]
        )
    return run.run_id


async def test_a_database_opened_read_only_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "pyflue.db"
    run_id = await make_database(path)
    async with SQLiteDatabase(path, read_only=True) as db:
        sessions, runs = SQLiteSessionStore(db), SQLiteRunStore(db)
        assert db.read_only
        assert [text_of(m) for m in await sessions.load(KEY)] == ["kept"]
        assert [r.run_id for r in await runs.list_runs()] == [run_id]
        assert [e.type for e in await runs.read_events(run_id)] == ["run_start", "run_end"]
        with pytest.raises(StoreError, match="read-only") as caught:
            await sessions.append(KEY, said("more"))
        assert "disk space" not in str(caught.value)
        with pytest.raises(StoreError, match="read-only"):
            await runs.request_cancel(run_id, "x")
    async with SQLiteSessionStore(path) as again:
        assert [text_of(m) for m in await again.load(KEY)] == ["kept"]


def can_mount_read_only() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_read_only_directory_is_read_and_said_to_be_read_only(tmp_path: Path) -> None:
    """A project directory this process cannot write (a read-only bind mount: root ignores file
    modes, not read-only mounts) is read as it is; writing it, or creating a database in it, fails
    with a message that says so."""
    if os.geteuid() != 0:
        folder = tmp_path / "project"
        folder.mkdir()
        run_id = anyio.run(make_database, folder / "pyflue.db")
        folder.chmod(0o555)
        (folder / "pyflue.db").chmod(0o444)
        command = [sys.executable, str(SCRIPT), "readonly", str(folder / "pyflue.db"), str(folder / "new.db")]
    elif can_mount_read_only():
        folder = tmp_path / "project"
        folder.mkdir()
        run_id = anyio.run(make_database, folder / "pyflue.db")
        inner = " ".join(
            [
                f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} &&",
                f"exec {sys.executable} {SCRIPT} readonly {folder / 'pyflue.db'} {folder / 'new.db'}",
            ]
        )
        command = ["unshare", "-rm", "sh", "-c", inner]
    else:
        pytest.skip("this machine can make no directory read-only for this process")
    done = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["read_only"] is True
    assert out["history"] == ["kept"] and out["sessions"] == ["shared"]
    assert out["runs"] == [run_id] and out["events"] == ["run_start", "run_end"]
    assert "read-only" in out["write"] and "disk space" not in out["write"]
    assert "not writable" in out["create"] and "disk space" not in out["create"]
    assert not (tmp_path / "project" / "new.db").exists()


# -- errors say what happened ----------------------------------------------------------------------


async def test_errors_say_what_happened(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    async with SQLiteSessionStore(a_file / "pyflue.db") as store:
        with pytest.raises(StoreError, match="cannot create the directory") as caught:
            await store.append(KEY, said("x"))
    assert "disk space" not in str(caught.value)

    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"these are notes, not a database" * 100)
    async with SQLiteSessionStore(not_a_database) as store:
        with pytest.raises(StoreError, match="not a SQLite database") as caught:
            await store.append(KEY, said("x"))
    assert "disk space" not in str(caught.value)

    folder = tmp_path / "folder.db"
    folder.mkdir()
    async with SQLiteSessionStore(folder) as store:
        with pytest.raises(StoreError, match="is a directory"):
            await store.append(KEY, said("x"))


# -- off the event loop ----------------------------------------------------------------------------


async def test_messages_are_encoded_and_decoded_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    threads: list[tuple[str, int]] = []

    def encode(message: StoredMessage) -> bytes:
        threads.append(("encode", threading.get_ident()))
        return session_codec.encode_message(message)

    def decode(encoded: Sequence[bytes]) -> list[StoredMessage]:
        threads.append(("decode", threading.get_ident()))
        return session_codec.decode_messages(encoded)

    monkeypatch.setattr(sqlite_sessions, "encode_message", encode)
    monkeypatch.setattr(sqlite_sessions, "decode_messages", decode)
    big = [UserMessage([ToolResultPart("c", "t", "x" * 1_000_000)])]
    async with SQLiteSessionStore(tmp_path / "pyflue.db") as store:
        await store.append(KEY, big)
        await store.replace(KEY, big + said("after"))
        assert await store.load(KEY) == big + said("after")
    assert {kind for kind, _ in threads} == {"encode", "decode"}
    assert loop_thread not in {thread for _, thread in threads}


# -- interrupted runs ------------------------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(process.stdout)


def test_an_interrupted_runs_events_read_the_same_everywhere(tmp_path: Path) -> None:
    """The run_end of a run whose process died is written once: every process reads the same ids,
    and it sorts after every event of the run."""
    db = tmp_path / "pyflue.db"
    run = RunRecord(
        run_id="workflow:flow:dead",
        workflow="flow",
        started_at=datetime.now(UTC),
        owner_pid=dead_pid(),
        owner_host=hostname(),
    )
    written = [Event("run_start", {"workflow": "flow"}, 1, run.run_id)] + [
        Event("tick", {"i": i}, i, run.run_id) for i in range(2, 6)
    ]

    async def write() -> None:
        async with SQLiteDatabase(db) as database:
            store = SQLiteRunStore(database)
            await store.create_run(run)
            await store.append_events(run.run_id, written)

    anyio.run(write)
    first, second = (result(script("events", str(db), run.run_id)) for _ in range(2))
    assert first["status"] == "interrupted"
    assert first["events"] == second["events"]
    ids = [event[0] for event in first["events"]]
    assert ids[:-1] == [e.event_id for e in written]
    assert [event[1] for event in first["events"]][-1] == "run_end" and first["events"][-1][2] == 6
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert first["events"][-1][3] >= written[-1].ts
