"""The run store and pyflue.runs: listing with cursors, reading and following logs, cancelling and
recovering runs across processes, retention."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue import Event, Project, cancel_run, get_run, iter_events, list_runs, prune_runs
from pyflue.errors import ConfigError, NotFoundError
from pyflue.ids import new_run_id
from pyflue.stores.memory import MemoryRunStore
from pyflue.stores.runs import RunRecord, RunStore
from pyflue.stores.sqlite import SQLiteRunStore
from tests.core._workflow_helpers import (
    STUCK,
    TICKING,
    write_project,
)

pytestmark = pytest.mark.anyio

HELPER = str(Path(__file__).with_name("_run_helper.py"))
REPO = str(Path(__file__).resolve().parents[2])
_files = itertools.count()


def make_store(kind: str, tmp_path: Path) -> RunStore:
    if kind == "memory":
        return MemoryRunStore()
    return SQLiteRunStore(tmp_path / f"runs-{next(_files)}.db")


def record(workflow: str = "a", status: str = "completed", **fields: object) -> RunRecord:
    return RunRecord.model_validate(
        {
            "run_id": new_run_id(workflow),
            "workflow": workflow,
            "status": status,
            "started_at": datetime.now(UTC),
            **fields,
        }
    )


def assert_complete_log(events: list[Event], run_id: str) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_start" and events[-1].type == "run_end"
    assert all(e.run_id == run_id for e in events)


# -- listing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["completed", "failed"])), max_size=24
    ),
    size=st.integers(1, 6),
    workflow=st.sampled_from([None, "a"]),
    status=st.sampled_from([None, "failed"]),
    inserts=st.lists(st.integers(0, 3), max_size=12),
)
async def test_cursor_pages_list_every_run_once_newest_first_under_concurrent_inserts(
    kind: str,
    tmp_path: Path,
    initial: list[tuple[str, str]],
    size: int,
    workflow: str | None,
    status: str | None,
    inserts: list[int],
) -> None:
    store = make_store(kind, tmp_path)
    made = []
    for name, state in initial:
        run = record(name, state)
        await store.create_run(run)
        made.append(run)
    expected = [
        r.run_id
        for r in reversed(made)
        if (workflow is None or r.workflow == workflow) and (status is None or r.status == status)
    ]

    seen: list[str] = []
    cursor: str | None = None
    pending = iter(inserts)
    for _ in range(len(made) + 2):
        page = await store.list_runs(workflow=workflow, status=status, limit=size, cursor=cursor)
        assert len(page.runs) <= size
        seen.extend(r.run_id for r in page.runs)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.runs) == size  # only the last page is short
        for _ in range(next(pending, 0)):  # runs started between two pages
            await store.create_run(record(workflow or "a", status or "completed"))
    assert cursor is None
    assert seen == expected


async def test_list_runs_filters_validate_and_default_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (await list_runs()).runs == []  # no database yet: no runs, and nothing is created
    assert not (tmp_path / ".pyflue").exists()
    with pytest.raises(NotFoundError):
        await get_run("workflow:x:nothing")

    write_project(tmp_path, {"workflows/hello.py": "async def run(ctx):\n    return 'hi'\n"})
    done = await Project.load(tmp_path).run("hello", {})
    page = await list_runs()
    assert [r.run_id for r in page] == [done.run_id] and page.next_cursor is None
    assert (await get_run(done.run_id)).result == "hi"
    assert (await list_runs(workflow="other")).runs == []
    assert len(await list_runs(status="completed")) == 1
    with pytest.raises(ConfigError, match="unknown run status"):
        await list_runs(status="done")
    with pytest.raises(ConfigError, match="limit"):
        await list_runs(limit=0)
    with pytest.raises(ConfigError, match="invalid run list cursor"):
        await list_runs(cursor="not-a-cursor")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_both_stores_keep_records_and_logs_the_same_way(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    assert isinstance(store, RunStore)
    run = record(
        "a", "running", payload={"x": [1, 2]}, owner_pid=os.getpid(), owner_host=socket.gethostname()
    )
    await store.create_run(run)
    with pytest.raises(ConfigError, match="already exists"):
        await store.create_run(run)
    events = [Event("run_start", {"workflow": "a"}, 1, run.run_id), Event("log", {"k": "v"}, 2, run.run_id)]
    await store.append_events(run.run_id, events)
    final = run.model_copy(
        update={"status": "completed", "result": {"ok": True}, "ended_at": datetime.now(UTC)}
    )
    await store.finish_run(final, [Event("run_end", {"status": "completed"}, 3, run.run_id)])

    assert await store.get_run(run.run_id) == final
    assert await store.get_run("workflow:a:missing") is None
    stored = await store.read_events(run.run_id)
    assert [e.type for e in stored] == ["run_start", "log", "run_end"]
    assert stored[:2] == events
    assert [e.seq for e in await store.read_events(run.run_id, after_seq=1, limit=1)] == [2]


# -- reading logs ----------------------------------------------------------------------------------


async def test_iter_events_filters_resumes_and_always_terminates(tmp_path: Path) -> None:
    project = Project.load(
        write_project(
            tmp_path,
            {
                "workflows/ticking.py": TICKING,
                "workflows/slow.py": "import anyio\nasync def run(ctx):\n    ctx.log.info('hi')\n"
                "    await anyio.sleep(30)\n",
            },
        )
    )
    done = await project.run("ticking", {"rounds": 2})
    every = [e async for e in iter_events(done.run_id, project=project)]  # follows a finished run: ends
    assert_complete_log(every, done.run_id)
    tools = [e async for e in iter_events(done.run_id, project=project, types=["tool_start", "tool_end"])]
    assert [e.type for e in tools] == ["tool_start", "tool_end"] * 2
    tail = [e async for e in iter_events(done.run_id, project=project, after_seq=len(every) - 2)]
    assert [e.seq for e in tail] == [len(every) - 1, len(every)]

    with anyio.fail_after(5):
        with pytest.raises(NotFoundError):
            [e async for e in iter_events("workflow:ticking:unknown", project=project)]

    async with anyio.create_task_group() as tg:
        run_id = await tg.start(lambda task_status: project.run("slow", {}, task_status=task_status))
        with anyio.fail_after(5):
            while len(await project.run_store.read_events(run_id)) < 2:  # noqa: ASYNC110 - polls the store
                await anyio.sleep(0.02)
            # without follow: what is stored now, without waiting for the end
            assert [
                e.type for e in [e async for e in iter_events(run_id, project=project, follow=False)]
            ] == [
                "run_start",
                "log",
            ]
        await cancel_run(run_id, project=project)


async def test_following_ends_when_the_run_is_pruned_meanwhile(tmp_path: Path) -> None:
    store = MemoryRunStore()
    run = record("a", "running")
    await store.create_run(run)
    await store.append_events(run.run_id, [Event("run_start", {}, 1, run.run_id)])
    seen: list[str] = []

    async def follow() -> None:
        async for event in iter_events(run.run_id, store=store, poll_interval=0.01):
            seen.append(event.type)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            await store.finish_run(
                run.model_copy(update={"status": "failed", "ended_at": datetime(2000, 1, 1)})
            )
            assert await store.prune_runs(60) == 1
    assert seen == ["run_start"]


# -- cancelling, recovering, pruning ---------------------------------------------------------------


async def test_cancel_run_of_finished_and_unknown_runs(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "runs.db")
    with pytest.raises(NotFoundError):
        await cancel_run("workflow:a:nope", store=store)  # the file does not even exist
    done = record("a", "completed")
    await store.create_run(done)
    assert await cancel_run(done.run_id, store=store) is False
    with pytest.raises(NotFoundError):
        await cancel_run("workflow:a:nope", store=store)


async def test_running_runs_of_dead_owners_are_interrupted_and_others_left_alone(tmp_path: Path) -> None:
    process = await anyio.open_process([sys.executable, "-c", "pass"])
    await process.wait()
    dead_pid = process.pid
    store = SQLiteRunStore(tmp_path / "runs.db")
    host = socket.gethostname()
    dead = record("a", "running", owner_pid=dead_pid, owner_host=host)
    alive = record("a", "running", owner_pid=os.getpid(), owner_host=host)
    elsewhere = record("a", "running", owner_pid=dead_pid, owner_host="another-host")
    for run in (dead, alive, elsewhere):
        await store.create_run(run)
    await store.append_events(dead.run_id, [Event("run_start", {}, 1, dead.run_id)])
    await store.append_events(
        dead.run_id,
        [
            Event(
                "model_end", {"usage": {"input_tokens": 7, "output_tokens": 3, "requests": 1}}, 2, dead.run_id
            )
        ],
    )

    assert await store.recover_interrupted() == [dead.run_id]
    assert await store.recover_interrupted() == []
    interrupted = await store.get_run(dead.run_id)
    assert interrupted is not None and interrupted.status == "interrupted"
    assert interrupted.error is not None and interrupted.error["reason"] == "owner_died"
    assert str(dead_pid) in interrupted.error["message"]
    assert interrupted.usage.input_tokens == 7 and interrupted.usage.requests == 1
    assert interrupted.ended_at is not None and interrupted.ended_at >= interrupted.started_at
    log = [e async for e in iter_events(dead.run_id, store=store)]
    assert [e.type for e in log] == ["run_start", "model_end", "run_end"]
    assert log[-1].data["status"] == "interrupted"
    assert (await store.get_run(alive.run_id)).status == "running"  # type: ignore[union-attr]
    assert (await store.get_run(elsewhere.run_id)).status == "running"  # type: ignore[union-attr]
    assert await cancel_run(dead.run_id, store=store) is False


async def test_prune_runs_deletes_old_finished_runs_with_their_logs(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "runs.db")
    long_ago = datetime.now(UTC) - timedelta(days=10)
    old = record("a", "completed", started_at=long_ago, ended_at=long_ago)
    recent = record("a", "failed", ended_at=datetime.now(UTC))
    old_but_running = record("a", "running", started_at=long_ago)
    for run in (old, recent, old_but_running):
        await store.create_run(run)
        await store.append_events(run.run_id, [Event("run_start", {}, 1, run.run_id)])

    assert await prune_runs(timedelta(days=1), store=store) == 1
    assert await store.get_run(old.run_id) is None
    assert await store.read_events(old.run_id) == []
    assert [r.run_id for r in await list_runs(store=store)] == [old_but_running.run_id, recent.run_id]
    assert await prune_runs(0, store=store) == 1  # seconds work too; running runs stay
    assert [r.run_id for r in await list_runs(store=store)] == [old_but_running.run_id]
    with pytest.raises(ConfigError):
        await prune_runs(-1, store=store)


# -- across processes ------------------------------------------------------------------------------


async def _line(stream: BufferedByteReceiveStream) -> str:
    return (await stream.receive_until(b"\n", 65536)).decode().strip()


async def _spawn(project: Path, workflow: str, run_id: str, payload: object, backend: str) -> Process:
    env = {**os.environ, "PYTHONPATH": REPO}
    return await anyio.open_process(
        [sys.executable, HELPER, "run", str(project), workflow, run_id, json.dumps(payload), backend], env=env
    )


async def test_a_live_log_read_from_another_process_is_complete_and_in_order(
    tmp_path: Path, anyio_backend: str
) -> None:
    project = write_project(tmp_path, {"workflows/ticking.py": TICKING})
    store = SQLiteRunStore(project / ".pyflue" / "pyflue.db")
    run_id = "workflow:ticking:live"
    events: list[Event] = []
    status_at_first_event = None
    with anyio.fail_after(60):
        async with await _spawn(project, "ticking", run_id, {"rounds": 8}, anyio_backend) as process:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            assert await _line(stdout) == f"started {run_id}"
            async for event in iter_events(run_id, store=store, poll_interval=0.02):
                if not events:
                    status_at_first_event = (await store.get_run(run_id)).status  # type: ignore[union-attr]
                events.append(event)
            assert await _line(stdout) == "ended completed"
            assert await process.wait() == 0

    assert status_at_first_event == "running"  # it was read live
    assert_complete_log(events, run_id)
    assert events == await store.read_events(run_id)  # live and after the fact: the same log
    types = [e.type for e in events]
    assert types.count("operation_start") == types.count("operation_end") == 8
    assert types.count("tool_start") == types.count("tool_end") == 8
    assert types.count("model_start") == types.count("model_end") == 16
    for operation_id in {e.operation_id for e in events if e.operation_id}:
        steps = [e.type for e in events if e.operation_id == operation_id and e.type != "text_delta"]
        assert steps == [
            "operation_start",
            "model_start",
            "model_end",
            "tool_start",
            "tool_end",
            "model_start",
            "model_end",
            "operation_end",
        ]
    assert events[-1].data["status"] == "completed" and events[-1].data["usage"]["requests"] == 16


async def test_cancel_run_from_another_process_reaches_the_running_tool(
    tmp_path: Path, anyio_backend: str
) -> None:
    project = write_project(tmp_path, {"workflows/stuck.py": STUCK})
    store = SQLiteRunStore(project / ".pyflue" / "pyflue.db")
    run_id = "workflow:stuck:remote"
    with anyio.fail_after(60):
        async with await _spawn(project, "stuck", run_id, {}, anyio_backend) as process:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            assert await _line(stdout) == f"started {run_id}"
            async for _ in iter_events(run_id, store=store, types=["tool_start"], poll_interval=0.02):
                break  # the tool is running
            asked = time.monotonic()
            assert await cancel_run(run_id, store=store, reason="stop from the CLI") is True
            assert await _line(stdout) == "ended cancelled"
            assert await process.wait() == 0
            assert time.monotonic() - asked < 5

    record = await get_run(run_id, store=store)
    assert record.status == "cancelled"
    assert record.error == {
        "type": "RunCancelledError",
        "message": "stop from the CLI",
        "reason": "cancel_requested",
    }
    events = await store.read_events(run_id)
    assert_complete_log(events, run_id)
    assert next(e for e in events if e.type == "operation_end").data["status"] == "cancelled"


async def test_a_run_killed_with_sigkill_is_interrupted_never_running_forever(
    tmp_path: Path, anyio_backend: str
) -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGKILL is POSIX")
    project = write_project(tmp_path, {"workflows/stuck.py": STUCK})
    db = project / ".pyflue" / "pyflue.db"
    store = SQLiteRunStore(db)
    run_id = "workflow:stuck:killed"
    followed: list[Event] = []
    tool_running = anyio.Event()

    async def follow() -> None:
        async for event in iter_events(run_id, store=store, poll_interval=0.05):
            followed.append(event)
            if event.type == "tool_start":
                tool_running.set()

    with anyio.fail_after(60):
        process = await _spawn(project, "stuck", run_id, {}, anyio_backend)
        async with process:
            assert process.stdout is not None
            assert await _line(BufferedByteReceiveStream(process.stdout)) == f"started {run_id}"
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await tool_running.wait()
                process.kill()  # SIGKILL: no cleanup, no final write
                await process.wait()
                # the follower notices the dead owner and ends (it would otherwise wait forever)

        # the next process to open the store finds the run interrupted
        result = await anyio.run_process(
            [sys.executable, HELPER, "recover", str(db), anyio_backend],
            env={**os.environ, "PYTHONPATH": REPO},
        )
    assert f"{run_id} interrupted" in result.stdout.decode().splitlines()
    assert_complete_log(followed, run_id)
    assert followed[-1].data["status"] == "interrupted"
    assert followed[-1].data["error"]["reason"] == "owner_died"
    record = await get_run(run_id, store=store)
    assert record.status == "interrupted" and record.ended_at is not None
    assert record.owner_pid == process.pid
