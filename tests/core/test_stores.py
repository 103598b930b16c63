"""Session stores: one contract, parametrised over the memory and SQLite stores (and checked
differentially with hypothesis), SQLite's append-only writes, ids that are data and never paths, and
history that survives a process restart (real subprocesses in tests/core/_scripts/)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue import define_tool, init
from pyflue.errors import InvalidIdError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    messages_to_json,
    text_of,
)
from pyflue.models.testing import FunctionModel
from pyflue.stores.base import SessionKey, SessionStore, StoredMessage
from pyflue.stores.memory import MemorySessionStore
from pyflue.stores.sqlite import SQLiteDatabase, SQLiteSessionStore

SCRIPT = Path(__file__).parent / "_scripts" / "session_process.py"
ROOT = Path(__file__).resolve().parents[2]

KEY = SessionKey("agent", "inst", "default")


def sample_messages() -> list[StoredMessage]:
    return [
        UserMessage([TextPart("Hello ✓ — ünïcode"), ImagePart("image/png", data=b"\x89PNG\x00\xff")]),
        AssistantMessage(
            [
                ThinkingPart("hmm", signature="sig=="),
                TextPart("Let me look."),
                ToolCallPart("c1", "lookup", {"id": 7, "nested": {"a": [1, None, "x"]}}),
            ]
        ),
        UserMessage(
            [ToolResultPart("c1", "lookup", '{"status":"shipped"}'), ToolResultPart("c2", "x", "no", True)]
        ),
        AssistantMessage([TextPart("Shipped.")]),
        UserMessage([ImagePart("image/jpeg", url="https://example.com/a.jpg")]),
    ]


def close(store: SessionStore) -> None:
    db = getattr(store, "db", None)
    if isinstance(db, SQLiteDatabase):
        db.close()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    made: SessionStore = (
        MemorySessionStore() if request.param == "memory" else SQLiteSessionStore(tmp_path / "pyflue.db")
    )
    yield made
    close(made)


# -- the contract ----------------------------------------------------------------------------------


async def test_store_satisfies_the_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_load_append_round_trip(store: SessionStore) -> None:
    assert await store.load(KEY) == []
    messages = sample_messages()
    await store.append(KEY, messages[:2])
    await store.append(KEY, messages[2:])
    await store.append(KEY, [])
    assert await store.load(KEY) == messages
    assert await store.load(KEY) == messages  # loading does not consume


async def test_replace_and_delete(store: SessionStore) -> None:
    messages = sample_messages()
    await store.append(KEY, messages)
    summary = [UserMessage([TextPart("Summary of the conversation so far.")])]
    await store.replace(KEY, summary)
    assert await store.load(KEY) == summary
    await store.append(KEY, messages[:1])
    assert await store.load(KEY) == summary + messages[:1]
    await store.delete(KEY)
    assert await store.load(KEY) == []
    await store.delete(KEY)  # deleting twice is fine
    await store.append(KEY, messages[:1])
    assert await store.load(KEY) == messages[:1]


async def test_caller_lists_are_not_the_stored_history(store: SessionStore) -> None:
    batch = sample_messages()[:2]
    await store.append(KEY, batch)
    batch.append(AssistantMessage([TextPart("sneaky")]))
    loaded = await store.load(KEY)
    loaded.clear()
    assert len(await store.load(KEY)) == 2


async def test_keys_are_distinct_and_listed(store: SessionStore) -> None:
    ids = ["..", "a/b", "a_b", "a\\b", "../../etc/passwd", "%2e%2e", "A_B", "a b", "ключ", "*", "default"]
    for i, session_id in enumerate(ids):
        await store.append(SessionKey("agent", "inst", session_id), [UserMessage([TextPart(f"m{i}")])])
    await store.append(SessionKey("agent", "other", "a/b"), [UserMessage([TextPart("other instance")])])
    await store.append(SessionKey("other", "inst", "a/b"), [UserMessage([TextPart("other agent")])])
    for i, session_id in enumerate(ids):
        loaded = await store.load(SessionKey("agent", "inst", session_id))
        assert [text_of(m) for m in loaded] == [f"m{i}"]
    assert await store.list_sessions("agent", "inst") == sorted(ids)
    assert await store.list_sessions("agent", "other") == ["a/b"]
    assert await store.list_sessions("agent", "nobody") == []
    await store.delete(SessionKey("agent", "inst", ".."))
    assert ".." not in await store.list_sessions("agent", "inst")
    assert [text_of(m) for m in await store.load(SessionKey("agent", "inst", "a/b"))] == ["m1"]


async def test_empty_sessions_are_not_listed(store: SessionStore) -> None:
    await store.append(KEY, [])
    assert await store.list_sessions(KEY.agent, KEY.instance_id) == []
    await store.append(KEY, sample_messages()[:1])
    await store.replace(KEY, [])
    assert await store.list_sessions(KEY.agent, KEY.instance_id) == []
    assert await store.load(KEY) == []


# -- hypothesis: random operations against a plain list --------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
parts = st.one_of(
    texts.map(TextPart),
    st.binary(max_size=16).map(lambda b: ImagePart("image/png", data=b)),
    st.tuples(texts, st.booleans()).map(lambda t: ToolResultPart("id", "tool", t[0], t[1])),
)
messages = st.one_of(
    st.lists(parts, min_size=1, max_size=3).map(UserMessage),
    st.lists(
        st.one_of(
            texts.map(TextPart),
            st.dictionaries(st.text(max_size=5), st.integers() | texts, max_size=3).map(
                lambda args: ToolCallPart("c", "t", args)
            ),
        ),
        min_size=1,
        max_size=3,
    ).map(AssistantMessage),
)
session_ids = st.sampled_from(["default", "..", "a/b", "a_b"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), session_ids, st.lists(messages, max_size=3)),
        st.tuples(st.just("replace"), session_ids, st.lists(messages, max_size=3)),
        st.tuples(st.just("delete"), session_ids, st.just([])),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def hypothesis_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("stores") / "hypothesis.db"
    yield path
    SQLiteDatabase.for_path(path).close()


_instances = iter(range(10**9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_memory_and_sqlite_agree_with_a_list(
    hypothesis_db: Path, ops: list[tuple[str, str, list[StoredMessage]]]
) -> None:
    instance = f"i{next(_instances)}"  # a fresh instance per example in one shared database file
    stores: list[SessionStore] = [MemorySessionStore(), SQLiteSessionStore(hypothesis_db)]

    async def main() -> None:
        model: dict[str, list[StoredMessage]] = {}
        for op, session_id, batch in ops:
            key = SessionKey("agent", instance, session_id)
            for store in stores:
                await getattr(store, op)(key, batch) if op != "delete" else await store.delete(key)
            if op == "append":
                model[session_id] = model.get(session_id, []) + batch
            elif op == "replace":
                model[session_id] = list(batch)
            else:
                model.pop(session_id, None)
        for store in stores:
            for session_id in ("default", "..", "a/b", "a_b"):
                assert await store.load(SessionKey("agent", instance, session_id)) == model.get(
                    session_id, []
                )
            listed = await store.list_sessions("agent", instance)
            assert listed == sorted(s for s, history in model.items() if history)

    anyio.run(main)


# -- SQLite: append-only ---------------------------------------------------------------------------


def rows(db: Path) -> list[tuple[str, str, str, int, bytes]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY agent, instance_id, session_id, seq").fetchall()


class Spy:
    """Wraps a store and records every call."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []

    async def load(self, key: SessionKey) -> list[StoredMessage]:
        self.calls.append(("load", 0))
        return await self.inner.load(key)

    async def append(self, key: SessionKey, batch: Sequence[StoredMessage]) -> None:
        self.calls.append(("append", len(batch)))
        await self.inner.append(key, batch)

    async def replace(self, key: SessionKey, batch: Sequence[StoredMessage]) -> None:
        self.calls.append(("replace", len(batch)))
        await self.inner.replace(key, batch)

    async def delete(self, key: SessionKey) -> None:
        await self.inner.delete(key)

    async def list_sessions(self, agent: str, instance_id: str) -> list[str]:
        return await self.inner.list_sessions(agent, instance_id)


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


async def test_sqlite_writes_only_new_messages_per_turn(tmp_path: Path) -> None:
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
    # One load; per prompt a turn of (prompt, call, results), then (answer): never a rewrite.
    assert spy.calls == [("load", 0)] + [("append", 2), ("append", 1), ("append", 1)] * 3
    assert [json.loads(r[4])[0]["role"] for r in before[:4]] == ["user", "assistant", "user", "assistant"]
    close(spy.inner)


async def test_sqlite_history_is_identical_after_reload(tmp_path: Path) -> None:
    db = tmp_path / "pyflue.db"
    store = SQLiteSessionStore(db)
    harness = await init(model=FunctionModel(note_then_answer), tools=[note], session_store=store)
    session = await harness.session("s")
    await session.prompt([TextPart("look"), ImagePart("image/png", data=b"\x00\x01")])
    close(store)
    fresh = await init(model="test", session_store=SQLiteSessionStore(db))
    assert (await fresh.session("s")).history == session.history


# -- ids are data, never paths ---------------------------------------------------------------------


def files_under(path: Path) -> set[str]:
    return {p.name for p in path.rglob("*")}


async def test_hostile_ids_are_distinct_sessions_and_never_touch_paths(tmp_path: Path) -> None:
    home = tmp_path / "project"
    home.mkdir()
    db = home / "pyflue.db"
    store = SQLiteSessionStore(db)
    hostile = ["..", "a/b", "a_b", "../../outside", "/etc/passwd", "a\\b", "C:\\x", ".", "~"]
    echo = FunctionModel(lambda request: "echo: " + text_of(request.messages[-1]))
    for instance_id in ("..", "a/b"):
        harness = await init(model=echo, id=instance_id, session_store=store)
        for session_id in hostile:
            await (await harness.session(session_id)).prompt(f"{instance_id}|{session_id}")
    for instance_id in ("..", "a/b"):
        harness = await init(model=echo, id=instance_id, session_store=SQLiteSessionStore(db))
        assert await harness.store.list_sessions("agent", instance_id) == sorted(hostile)
        for session_id in hostile:
            history = (await harness.session(session_id)).history
            assert [text_of(m) for m in history] == [
                f"{instance_id}|{session_id}",
                f"echo: {instance_id}|{session_id}",
            ]
    close(store)
    assert files_under(tmp_path) == {"project", *files_under(home)}
    assert files_under(home) <= {"pyflue.db", "pyflue.db-wal", "pyflue.db-shm"}


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "\x1b[31mred", "tab\t", "del\x7f"])
async def test_control_characters_are_invalid_ids(bad: str, tmp_path: Path) -> None:
    store = SQLiteSessionStore(tmp_path / "pyflue.db")
    with pytest.raises(InvalidIdError, match="control characters"):
        await init(model="test", id=bad, session_store=store)
    harness = await init(model="test", session_store=store)
    with pytest.raises(InvalidIdError, match="control characters"):
        await harness.session(bad)
    assert not (tmp_path / "pyflue.db").exists() or rows(tmp_path / "pyflue.db") == []
    close(store)


# -- a process restart -----------------------------------------------------------------------------


def run_process(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYFLUE_MODEL", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    return {key: value for line in lines for key, value in line.items()}


def test_history_survives_a_process_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "pyflue.db")
    # Two processes write to one database file at once (different sessions; asyncio and trio).
    first = run_process(db, "asyncio", "case-42", "a/b", "hello", "again")
    second = run_process(db, "trio", "case-42", "a_b", "other")
    written_ab, written_a_b = finish(first), finish(second)
    assert written_ab["before"] == [] and written_a_b["before"] == []
    assert len(written_ab["after"]) == 8 and len(written_a_b["after"]) == 4
    assert written_ab["after"][3]["parts"][0]["text"] == "hello: 3 messages seen"
    assert written_ab["after"][7]["parts"][0]["text"] == "again: 7 messages seen"

    # A new process finds each history exactly as written, and continues it.
    reader = finish(run_process(db, "asyncio", "case-42", "a/b", "more"))
    assert reader["before"] == written_ab["after"]
    assert reader["after"][:8] == written_ab["after"]
    assert reader["after"][11]["parts"][0]["text"] == "more: 11 messages seen"

    # ... and this process reads the same rows.
    async def read() -> tuple[list[Any], list[Any], list[str]]:
        store = SQLiteSessionStore(db)
        try:
            ab = await store.load(SessionKey("restart", "case-42", "a/b"))
            a_b = await store.load(SessionKey("restart", "case-42", "a_b"))
            return (
                json.loads(messages_to_json(ab)),
                json.loads(messages_to_json(a_b)),
                await store.list_sessions("restart", "case-42"),
            )
        finally:
            close(store)

    ab, a_b, listed = anyio.run(read)
    assert ab == reader["after"]
    assert a_b == written_a_b["after"]
    assert listed == ["a/b", "a_b"]


async def test_two_store_objects_on_one_file_are_one_storage(tmp_path: Path) -> None:
    """Code that opens ``SQLiteSessionStore(path)`` per request still gets one conversation per
    session: operations take turns and every model call sees the whole history."""
    db = tmp_path / "pyflue.db"
    seen: list[list[str]] = []
    running: list[str] = []

    async def respond(request: ModelRequest) -> str:
        running.append("x")
        assert len(running) == 1, "two operations ran at once on one stored session"
        seen.append([text_of(m) for m in request.messages])
        await anyio.sleep(0.01)
        running.pop()
        return "ok"

    first = await init(model=FunctionModel(respond), id="case", session_store=SQLiteSessionStore(db))
    second = await init(model=FunctionModel(respond), id="case", session_store=SQLiteSessionStore(db))
    a, b = await first.session(), await second.session()
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.prompt, "one")
        tg.start_soon(b.prompt, "two")
    await a.prompt("three")
    assert [len(s) for s in seen] == [1, 3, 5]
    assert seen[2][:4] == seen[1] + ["ok"]
    stored = [text_of(m) for m in await SQLiteSessionStore(db).load(a.key)]
    assert stored == [text_of(m) for m in a.history] == [text_of(m) for m in b.history]
    close(first.store)
