"""Hosts A and B of the resumed-run tests: two copies of one project sharing a run store, whose
runs are started, killed and resumed in processes of their own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from pyflue.stores.runs import JournalStep, RunStore
from pyflue.stores.sqlite.runs import SQLiteRunStore
from tests.core._workflow_helpers import write_project

from ._project import TRAVEL
from ._provider import Provider

HOST = Path(__file__).with_name("_host.py")
ROOT = Path(__file__).resolve().parents[2]


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
