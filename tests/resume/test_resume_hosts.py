"""Resumed runs of a workflow whose agent talks to a provider over HTTP (a local wire server counts
the requests) and delegates to a subagent through the ``task`` tool: killed with SIGKILL at a step
boundary in one process group ("host A", its own copy of the project), resumed from another ("host
B", another copy), on SQLite and on PostgreSQL. The resumed result is the uninterrupted one, no
model request with a recorded result is made again, a non-idempotent tool never runs twice, and
the killed run's log holds the events of every step its journal recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue.stores.runs import JournalStep, RunStore
from pyflue.stores.sqlite.runs import SQLiteRunStore
from tests.postgres.server import shared_cluster
from tests.wire import _free_port

from ..core._workflow_helpers import write_project
from ._project import TRAVEL
from ._provider import Provider, serving

HOST = Path(__file__).with_name("_host.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with serving(_free_port()) as made:
        yield made


class Hosts:
    """Two copies of one project (hosts A and B) sharing a work directory of notes, and the run
    store they share: the SQLite file of host A's copy, or a PostgreSQL schema."""

    def __init__(self, root: Path, provider: Provider, database: tuple[str, str] | None) -> None:
        self.a = write_project(root / "a", {"workflows/travel.py": TRAVEL})
        self.b = root / "b"
        self.work = root / "work"
        self.work.mkdir()
        self.provider = provider
        self.database = database
        if database is None:
            (self.a / ".pyflue").mkdir(exist_ok=True)
            shutil.copytree(self.a, self.b, ignore=shutil.ignore_patterns(".pyflue"))
            (self.b / ".pyflue").mkdir()
            (self.b / ".pyflue" / "pyflue.db").symlink_to(self.a / ".pyflue" / "pyflue.db")
        else:
            shutil.copytree(self.a, self.b)

    def env(self, kill_at: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KILL_AT", "PYFLUE_DATABASE_URL")}
        env.update(RESUME_DIR=str(self.work), PYTHONPATH=str(ROOT))
        env.update(OPENAI_API_KEY="k", OPENAI_BASE_URL=self.provider.url)
        if kill_at is not None:
            env["KILL_AT"] = kill_at
        return env

    def start(
        self, mode: str, project: Path, run_id: str, kill_at: str | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(HOST), mode, str(project), run_id, *(self.database or ())],
            env=self.env(kill_at),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, as on another host
        )

    def finish(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def kill_at(self, run_id: str, gate: str) -> None:
        """Start the run on host A and SIGKILL its process group once it reaches ``gate``."""
        proc = self.start("run", self.a, run_id, gate)
        ready = self.work / "ready"
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"host A ended before {gate}: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"never reached {gate}"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ready.unlink()
        if self.database is not None:
            time.sleep(1.5)  # PostgreSQL judges owners by lease: host A's (one second) runs out

    def lines(self, name: str) -> list[str]:
        path = self.work / name
        return path.read_text().splitlines() if path.exists() else []

    def read(self, run_id: str) -> tuple[list[JournalStep], list[Any]]:
        async def read() -> tuple[list[JournalStep], list[Any]]:
            if self.database is None:
                async with SQLiteRunStore(self.a / ".pyflue" / "pyflue.db") as store:
                    return await _both(store, run_id)
            from pyflue.stores.postgres import PostgresDatabase

            async with PostgresDatabase(self.database[0], schema=self.database[1]) as db:
                return await _both(db.run_store(), run_id)

        return anyio.run(read)


async def _both(store: RunStore, run_id: str) -> tuple[list[JournalStep], list[Any]]:
    assert hasattr(store, "read_journal")
    return await store.read_journal(run_id), await store.read_events(run_id)


@pytest.fixture(params=["sqlite", "postgres"])
def hosts(request: pytest.FixtureRequest, tmp_path: Path, provider: Provider) -> Callable[[str], Hosts]:
    def make(name: str) -> Hosts:
        database = None
        if request.param == "postgres":
            url = shared_cluster(request.config).url
            database = (url, f"resume_{os.getpid()}_{name}_{len(provider.requests)}")
        return Hosts(tmp_path / name, provider, database)

    return make


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> tuple[dict[str, Any], int]:
    """An uninterrupted run on SQLite: its record and how many model requests it made."""
    hosts = Hosts(tmp_path_factory.mktemp("base"), provider, None)
    before = len(provider.requests)
    record = hosts.finish(hosts.start("run", hosts.a, "run-base"))
    assert record["status"] == "completed", record
    assert hosts.lines("side_effects") == ["book hotel"] and hosts.lines("verifies") == ["hotel"]
    assert record["result"]["first"] == "done: ref-hotel (3 results)"
    return record, len(provider.requests) - before


def _check_log_holds_every_recorded_step(journal: list[JournalStep], events: list[Any]) -> None:
    """Each recorded step was written with the events before it: a model step's ``model_end``, a
    tool step's ``tool_end``, are in the killed run's log."""
    done = [s for s in journal if s.status == "done"]
    ends = Counter(e.data["tool"] for e in events if e.type == "tool_end")
    for tool, count in Counter(s.name for s in done if s.kind == "tool").items():
        assert ends[tool] >= count, (tool, ends, done)
    assert sum(1 for e in events if e.type == "model_end") >= sum(1 for s in done if s.kind == "model")


@pytest.mark.parametrize("gate", ["lookup:hotel:after", "between:1", "book:hotel:after"])
def test_a_run_killed_on_one_host_resumes_on_another(
    hosts: Callable[[str], Hosts], provider: Provider, gate: str, baseline: tuple[dict[str, Any], int]
) -> None:
    expected, expected_requests = baseline
    pair = hosts(gate.replace(":", "-"))
    before = len(provider.requests)
    pair.kill_at("run-h", gate)
    journal, events = pair.read("run-h")
    _check_log_holds_every_recorded_step(journal, events)
    # The subagent's model calls and its verify call are steps inside the parent's task call.
    task = next(s for s in journal if s.kind == "tool" and s.name == "task")
    inner = [s for s in journal if s.step.startswith(task.step + ".")]
    assert [(s.kind, s.name, s.status) for s in inner] == [
        ("model", "openai/gpt-4.1-mini", "done"),
        ("tool", "verify", "done"),
        ("model", "openai/gpt-4.1-mini", "done"),
    ]
    assert task.status == "done"

    record = pair.finish(pair.start("resume", pair.b, "run-h"))

    assert record["status"] == "completed", record
    # Every request was made once: none with a recorded result again (none was in flight at a tool).
    assert len(provider.requests) - before == expected_requests
    if gate == "book:hotel:after":
        # The booking ran and its process died before it recorded a result: not idempotent, so it
        # is not run again, and the model is told its outcome is unknown.
        assert "StepOutcomeUnknownError" in record["result"]["first"]
        assert pair.lines("side_effects") == ["book hotel"]
        return
    assert record["result"] == expected["result"]
    assert pair.lines("side_effects") == ["book hotel"]
    # The subagent's verify call was replayed; the idempotent lookup ran again only when cut short.
    assert pair.lines("verifies") == ["hotel"]
    assert pair.lines("lookups") == (["hotel", "hotel"] if gate == "lookup:hotel:after" else ["hotel"])
    assert record["usage"]["requests"] == expected["usage"]["requests"]
    journal, events = pair.read("run-h")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.data["status"] for e in events if e.type == "run_end"] == ["interrupted", "completed"]
