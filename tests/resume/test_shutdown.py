"""Orderly shutdown in one process: a run cut short because its runtime closes, or because the
:class:`~pyflue.resuming.Resumer` that resumed it stops, is recorded ``interrupted`` (the record and
``run_end`` a dead owner's run gets) and can be resumed; a run whose caller cancels it stays
``cancelled``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue import Runtime, resume_run
from pyflue.errors import ConfigError
from pyflue.project import Project, invoke_workflow
from pyflue.resuming import Resumer
from pyflue.stores.runs import RunRecord
from pyflue.stores.sqlite.runs import SQLiteRunStore
from pyflue.workflow import cancel_local
from pyflue_asgi import create_app

from ..core._workflow_helpers import write_project
from ._waiting import waiting


def _project(tmp_path: Path, resumable: bool = True) -> Path:
    return write_project(tmp_path / "project", {"workflows/wait.py": waiting(resumable)})


async def _until(path: Path) -> None:
    with anyio.fail_after(30):
        while not await anyio.to_thread.run_sync(path.exists):  # noqa: ASYNC110 - a file the run writes
            await anyio.sleep(0.01)


async def _read(root: Path, run_id: str) -> tuple[RunRecord, list[Any]]:
    async with SQLiteRunStore(root / ".pyflue" / "pyflue.db") as store:
        record = await store.get_run(run_id)
        assert record is not None
        return record, await store.read_events(run_id)


async def _start_in_runtime(root: Path, work: Path, run_id: str) -> None:
    """Start the run in a runtime's own task group, wait until it blocks, then close the runtime."""
    async with Runtime() as runtime:
        project = await Project.load_async(root)

        async def go() -> None:
            await invoke_workflow(project, "wait", {"dir": str(work), "n": 1}, run_id=run_id)

        await runtime.start_soon(go)
        await _until(work / "waiting")
        assert not runtime.closing
    assert runtime.closing


def _ends(events: list[Any]) -> list[str]:
    return [e.data["status"] for e in events if e.type == "run_end"]


async def test_a_run_cut_short_by_its_closing_runtime_is_interrupted_and_resumes(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    await _start_in_runtime(root, work, "run-closing")
    record, events = await _read(root, "run-closing")
    assert record.status == "interrupted"
    assert record.error is not None and record.error["reason"] == "owner_died"
    assert _ends(events) == ["interrupted"]
    assert events[-1].data["error"] == record.error
    (work / "gate").write_text("open")
    resumed = await resume_run("run-closing", project=root)
    assert resumed.status == "completed", resumed.error
    assert resumed.result == {"n": 2, "gate": "open"}
    assert (work / "steps").read_text().splitlines() == ["first"]  # the journaled step was not redone
    _, events = await _read(root, "run-closing")
    assert _ends(events) == ["interrupted", "completed"]


async def test_a_run_whose_caller_cancels_it_stays_cancelled(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    async with Runtime():
        project = await Project.load_async(root)
        async with anyio.create_task_group() as group:
            payload = {"dir": str(work), "n": 1}
            group.start_soon(lambda: invoke_workflow(project, "wait", payload, run_id="run-c"))
            await _until(work / "waiting")
            group.cancel_scope.cancel()
    record, events = await _read(root, "run-c")
    assert record.status == "cancelled"
    assert record.error is not None and record.error["reason"] == "caller_cancelled"
    assert _ends(events) == ["cancelled"]
    with pytest.raises(ConfigError, match="only an interrupted run can be resumed"):
        await resume_run("run-c", project=root)


async def test_a_non_resumable_run_cut_short_by_shutdown_is_interrupted_but_not_resumable(
    tmp_path: Path,
) -> None:
    root, work = _project(tmp_path, resumable=False), tmp_path
    await _start_in_runtime(root, work, "run-plain")
    record, events = await _read(root, "run-plain")
    assert record.status == "interrupted" and _ends(events) == ["interrupted"]
    with pytest.raises(ConfigError, match="was not resumable"):
        await resume_run("run-plain", project=root)


async def test_a_stopping_resumer_leaves_its_resumed_run_interrupted(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    await _start_in_runtime(root, work, "run-r")
    (work / "waiting").unlink()
    async with Runtime():
        project = await Project.load_async(root)
        async with Resumer(project, grace_period=0) as resumer:
            await _until(work / "waiting")  # resumed, and blocked again
            assert resumer.resumed == ["run-r"]
    record, events = await _read(root, "run-r")
    assert record.status == "interrupted", record.error
    assert _ends(events) == ["interrupted", "interrupted"]
    assert sum(1 for e in events if e.type == "run_resume") == 1
    (work / "gate").write_text("later")
    resumed = await resume_run("run-r", project=root)
    assert resumed.status == "completed" and resumed.result == {"n": 2, "gate": "later"}
    assert (work / "steps").read_text().splitlines() == ["first"]


async def test_a_cancel_request_made_before_the_runtime_closes_wins(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    async with Runtime() as runtime:
        project = await Project.load_async(root)

        async def go() -> None:
            await invoke_workflow(project, "wait", {"dir": str(work), "n": 1}, run_id="run-q")

        await runtime.start_soon(go)
        await _until(work / "waiting")
        assert cancel_local("run-q", "asked first")  # no checkpoint before the runtime closes
    record, events = await _read(root, "run-q")
    assert record.status == "cancelled" and _ends(events) == ["cancelled"]
    assert record.error is not None
    assert (record.error["reason"], record.error["message"]) == ("cancel_requested", "asked first")


async def _until_status(root: Path, run_id: str, status: str) -> RunRecord:
    with anyio.fail_after(30):
        while (record := (await _read(root, run_id))[0]).status != status:  # noqa: ASYNC110 - another store
            await anyio.sleep(0.02)
    return record


async def test_create_app_auto_resume_finishes_an_interrupted_run(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    await _start_in_runtime(root, work, "run-app")
    (work / "gate").write_text("served")
    app = create_app(root, auto_resume=True, grace_period=0)
    async with app.lifespan():
        record = await _until_status(root, "run-app", "completed")
    assert record.result == {"n": 2, "gate": "served"}
    _, events = await _read(root, "run-app")
    assert _ends(events) == ["interrupted", "completed"]


async def test_an_app_whose_lifespan_ends_leaves_its_runs_interrupted(tmp_path: Path) -> None:
    root, work = _project(tmp_path), tmp_path
    app = create_app(root, grace_period=0)
    async with app.lifespan():
        handle = await app.state.start_run("wait", {"dir": str(work), "n": 1})
        await _until(work / "waiting")
    record, events = await _read(root, handle.run_id)
    assert record.status == "interrupted" and _ends(events) == ["interrupted"]
    assert handle.done.is_set()
