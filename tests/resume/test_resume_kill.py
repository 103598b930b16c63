"""Resumable runs across real processes: a worker runs the workflow and is killed with SIGKILL at
one step boundary; another process resumes the run. The resumed run's result equals an uninterrupted
run's, no recorded model call is made again, and no side effect happens twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue.stores.sqlite.runs import SQLiteRunStore

from ..core._workflow_helpers import write_project
from ._project import trip

WORKER = Path(__file__).with_name("_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(work: Path, kill_at: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KILL_AT", "PYFLUE_DATABASE_URL")}
    env["RESUME_DIR"] = str(work)
    env["PYTHONPATH"] = str(ROOT)
    if kill_at is not None:
        env["KILL_AT"] = kill_at
    return env


def _start(
    mode: str, project: Path, work: Path, run_id: str, kill_at: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(project), run_id],
        env=_env(work, kill_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _kill_at(project: Path, work: Path, run_id: str, gate: str) -> None:
    """Start a run and SIGKILL it once it reaches ``gate``."""
    proc = _start("run", project, work, run_id, gate)
    ready = work / "ready"
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the worker ended before {gate}: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"never reached {gate}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ready.unlink()


def _lines(work: Path, name: str) -> list[str]:
    path = work / name
    return path.read_text().splitlines() if path.exists() else []


def _journal(project: Path, run_id: str) -> list[Any]:
    async def read() -> list[Any]:
        async with SQLiteRunStore(project / ".pyflue" / "pyflue.db") as store:
            return await store.read_journal(run_id)

    return anyio.run(read)


def _events(project: Path, run_id: str) -> list[Any]:
    async def read() -> list[Any]:
        async with SQLiteRunStore(project / ".pyflue" / "pyflue.db") as store:
            return await store.read_events(run_id)

    return anyio.run(read)


def _setup(tmp_path: Path, name: str, place: str = "hotel") -> tuple[Path, Path]:
    project = write_project(tmp_path / name / "project", {"workflows/trip.py": trip(place)})
    work = tmp_path / name / "work"
    work.mkdir()
    return project, work


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], int]:
    """An uninterrupted run: its record and how many model calls it made."""
    project, work = _setup(tmp_path_factory.mktemp("base"), "base")
    record = _finish(_start("run", project, work, "run-base"))
    assert record["status"] == "completed", record
    return record, len(_lines(work, "model_calls"))


# Gates where everything that ran before was either recorded or safe to repeat (the model call in
# flight, the idempotent lookup, the idempotent ctx.step), so the resumed result must be the same.
GATES = [
    "model:ask hotel:1",
    "model:results:3",
    "between:1",
    "confirm",
    "between:2",
    "model:ask train:5",
    "book:train:before",
    "model:results:7",
    "between:3",
]


@pytest.mark.parametrize("gate", GATES)
def test_killed_run_resumes_to_the_uninterrupted_result(
    tmp_path: Path, gate: str, baseline: tuple[dict[str, Any], int]
) -> None:
    expected, expected_calls = baseline
    project, work = _setup(tmp_path, "k")
    _kill_at(project, work, "run-k", gate)
    journal = [s for s in _journal(project, "run-k") if s.kind != "run"]
    recorded_models = sum(1 for s in journal if s.kind == "model" and s.status == "done")
    calls_before = len(_lines(work, "model_calls"))

    record = _finish(_start("resume", project, work, "run-k"))

    if gate == "book:train:before":
        # The booking had started when the process died: its outcome is unknown, it is not
        # idempotent, so it is not run again and the model is told so.
        assert record["status"] == "completed", record
        assert "StepOutcomeUnknownError" in record["result"]["second"]
        assert _lines(work, "side_effects") == ["book hotel"]
        return
    assert record["status"] == "completed", record
    got = dict(record["result"])
    want = dict(expected["result"])
    uuids = _lines(work, "uuids")
    assert got.pop("uuid") == uuids[0]  # the uuid the first attempt drew, if it drew one
    want.pop("uuid")
    assert got == want
    # No side effect twice; no model call with a recorded result made again.
    assert sorted(_lines(work, "side_effects")) == ["book hotel", "book train"]
    calls = len(_lines(work, "model_calls"))
    assert calls == expected_calls + (calls_before - recorded_models)
    assert calls_before - recorded_models <= 1  # at most the call in flight is made again
    # The log shows the resume, and the run ended once more, normally.
    events = _events(project, "run-k")
    resumes = [e for e in events if e.type == "run_resume"]
    assert len(resumes) == 1 and resumes[0].data["journaled_steps"] == len(journal)
    ends = [e for e in events if e.type == "run_end"]
    assert [e.data["status"] for e in ends] == ["interrupted", "completed"]
    assert ends[-1].data["replayed_steps"] == sum(1 for s in journal if s.status == "done")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_changed_code_fails_the_resumed_run_with_resume_diverged(tmp_path: Path) -> None:
    project, work = _setup(tmp_path, "d")
    _kill_at(project, work, "run-d", "between:2")
    # The first prompt changed (to a text of another length: Python trusts cached bytecode while a
    # file keeps its size and its mtime second, and this edit happens within a second of the import).
    (project / "workflows" / "trip.py").write_text(trip("airplane"))
    record = _finish(_start("resume", project, work, "run-d"))
    assert record["status"] == "failed"
    assert record["error"]["type"] == "ResumeDivergedError"
    assert "step 0" in record["error"]["message"] and "model" in record["error"]["message"]
    assert _lines(work, "side_effects") == ["book hotel"]  # nothing ran live after the divergence


def test_only_interrupted_resumable_runs_resume(tmp_path: Path, baseline: tuple[dict[str, Any], int]) -> None:
    project, work = _setup(tmp_path, "f")
    assert _finish(_start("run", project, work, "run-f"))["status"] == "completed"
    proc = _start("resume", project, work, "run-f")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "RunNotInterruptedError: run 'run-f' is completed; only an interrupted run can be resumed" in err


def test_pyflue_resume_cli_continues_a_killed_run(
    tmp_path: Path, baseline: tuple[dict[str, Any], int]
) -> None:
    project, work = _setup(tmp_path, "c")
    _kill_at(project, work, "run-c", "between:2")
    done = subprocess.run(
        [sys.executable, "-m", "pyflue_cli", "--project", str(project), "resume", "run-c"],
        env=_env(work, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["status"] == "completed" and record["run_id"] == "run-c"
    assert record["result"]["code"] == baseline[0]["result"]["code"]
    assert sorted(_lines(work, "side_effects")) == ["book hotel", "book train"]
    again = subprocess.run(
        [sys.executable, "-m", "pyflue_cli", "--project", str(project), "resume", "run-c"],
        env=_env(work, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "only an interrupted run can be resumed" in again.stderr
