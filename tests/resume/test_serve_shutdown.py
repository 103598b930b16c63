"""``pyflue serve`` and resumable runs in real processes: a server stopped with SIGTERM records the
run it was running ``interrupted`` (not ``cancelled``) and ``pyflue resume`` completes it; a
``pyflue serve --auto-resume`` started on a project whose run was killed with SIGKILL finishes the
run by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from pyflue.stores.runs import RunRecord
from pyflue.stores.sqlite.runs import SQLiteRunStore
from tests.wire import _free_port

from ..core._workflow_helpers import write_project
from ._waiting import waiting

KILLED = """
import sys, anyio
from pyflue.project import invoke_workflow
anyio.run(lambda: invoke_workflow(sys.argv[1], "wait", {"dir": sys.argv[2], "n": 1}, run_id=sys.argv[3]))
"""


def _cli(root: Path, *args: str, log: Path) -> subprocess.Popen[str]:
    with log.open("a") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "pyflue_cli", "--project", str(root), *args],
            stdout=sink,
            stderr=sink,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYFLUE_DATABASE_URL"},
        )


def _started(root: Path, port: int, log: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = _cli(root, "serve", "--port", str(port), *extra, log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "pyflue serve did not come up"
        time.sleep(0.05)


def _wait_for(path: Path, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _stop(process: subprocess.Popen[str], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    # A graceful shutdown on SIGTERM is a normal exit (uvicorn raises the signal again afterwards).
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert "Application shutdown complete." in log.read_text()


def _read(root: Path, run_id: str) -> tuple[RunRecord, list[Any]]:
    async def read() -> tuple[RunRecord, list[Any]]:
        async with SQLiteRunStore(root / ".pyflue" / "pyflue.db") as store:
            record = await store.get_run(run_id)
            assert record is not None
            return record, await store.read_events(run_id)

    return anyio.run(read)


def _ends(events: list[Any]) -> list[str]:
    return [e.data["status"] for e in events if e.type == "run_end"]


def test_sigterm_leaves_a_resumable_run_interrupted_and_pyflue_resume_completes_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", {"workflows/wait.py": waiting()})
    work, log = tmp_path / "work", tmp_path / "serve.log"
    work.mkdir()
    server, url = _started(root, _free_port(), log)
    try:
        answer = httpx.post(url + "/workflows/wait", json={"dir": str(work), "n": 1}, timeout=10)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        _wait_for(work / "waiting", server, log)
    finally:
        _stop(server, log)
    record, events = _read(root, run_id)
    assert record.status == "interrupted", record.error
    assert record.error is not None and record.error["reason"] == "owner_died"
    assert _ends(events) == ["interrupted"]
    (work / "gate").write_text("after restart")
    resume = _cli(root, "resume", run_id, log=tmp_path / "resume.log")
    assert resume.wait(timeout=60) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    record, events = _read(root, run_id)
    assert record.status == "completed", record.error
    assert record.result == {"n": 2, "gate": "after restart"}
    assert _ends(events) == ["interrupted", "completed"]
    assert (work / "steps").read_text().splitlines() == ["first"]  # the journaled step ran once


def test_serve_auto_resume_finishes_a_run_whose_process_was_killed(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", {"workflows/wait.py": waiting()})
    work, log = tmp_path / "work", tmp_path / "serve.log"
    work.mkdir()
    victim = subprocess.Popen([sys.executable, "-c", KILLED, str(root), str(work), "run-killed"])
    try:
        _wait_for(work / "waiting", victim, log)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    (work / "gate").write_text("auto")
    server, url = _started(root, _free_port(), log, "--auto-resume")
    try:
        deadline = time.monotonic() + 60
        while (body := httpx.get(url + "/runs/run-killed", timeout=10).json())["status"] != "completed":
            assert body["status"] in ("running", "interrupted"), body
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
    finally:
        _stop(server, log)
    assert body["result"] == {"n": 2, "gate": "auto"}
    record, events = _read(root, "run-killed")
    assert record.status == "completed" and record.result == body["result"]
    assert _ends(events) == ["interrupted", "completed"]
    assert sum(1 for e in events if e.type == "run_resume") == 1
    assert (work / "steps").read_text().splitlines() == ["first"]
