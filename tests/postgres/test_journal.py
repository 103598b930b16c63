"""The journal of resumable runs in PostgreSQL: the schema migration that adds it to an existing
database, and the owner token that keeps an owner which lost its run from writing to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import psycopg
import pytest
from psycopg import sql

from pyflue.errors import StoreError
from pyflue.events import Event
from pyflue.stores.postgres import SCHEMA_VERSION, PostgresDatabase
from pyflue.stores.postgres.schema import MIGRATIONS
from pyflue.stores.runs import JournalStep, RunRecord

ROOT = Path(__file__).resolve().parents[2]


def _version_1(url: str, schema: str) -> None:
    """A database as PyFlue's first schema version left it, with a run that was interrupted."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(MIGRATIONS[0].encode())
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO runs (run_id, workflow, status, payload, error, started_at, ended_at, "
            "owner_pid, owner_host, lease_expires, last_seq) VALUES "
            "('old-run', 'trip', 'interrupted', '{\"city\": \"Oslo\"}', "
            '\'{"type": "WorkflowError", "message": "gone", "reason": "owner_died"}\', '
            "1700000000000000, 1700000001000000, 1, 'host-a', 0, 0)"
        )


def test_pyflue_db_upgrade_adds_the_journal_to_an_existing_database(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    schema = new_schema()
    _version_1(postgres_url, schema)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyflue_cli",
            "db",
            "upgrade",
            "--url",
            postgres_url,
            "--schema",
            schema,
            "--json",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["version"] == SCHEMA_VERSION >= 2

    async def use() -> None:
        async with PostgresDatabase(postgres_url, schema=schema, auto_upgrade=False) as db:
            store = db.run_store()
            old = await store.get_run("old-run")
            assert old is not None and old.status == "interrupted" and old.payload == {"city": "Oslo"}
            assert await store.read_journal("old-run") == []
            await store.reopen_run("old-run", os.getpid(), "host-b")
            step = JournalStep("0", 0, "model", "test/m", "f", "done", {"parts": []})
            await store.record_step("old-run", step, [Event("log", {"n": 1}, 1, "old-run")])
            assert await store.read_journal("old-run") == [step]
            assert [e.seq for e in await store.read_events("old-run")] == [1]

    anyio.run(use)


async def test_an_owner_that_lost_its_run_cannot_write_to_the_resumed_run(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    schema = new_schema()
    async with (
        PostgresDatabase(postgres_url, schema=schema, pool_size=2) as host_a,
        PostgresDatabase(postgres_url, schema=schema, pool_size=2) as host_b,
    ):
        first = host_a.run_store(run_lease=0.2)
        second = host_b.run_store()
        run = RunRecord(
            run_id="run-z", workflow="trip", started_at=datetime.now(UTC), owner_pid=1, owner_host="a"
        )
        await first.create_run(run)
        await first.record_step(
            "run-z", JournalStep("0", 0, "step", "s", "", "done", 1), [Event("log", {}, 1, "run-z")]
        )
        await anyio.sleep(0.3)  # the first owner stays silent past its lease: reopening interrupts it
        await second.reopen_run("run-z", 2, "b")
        # The first owner comes back: it is told to stop, and nothing it writes reaches the run.
        assert "resumed by another process" in (await first.heartbeat("run-z") or "")
        with pytest.raises(StoreError, match="under another owner"):
            await first.record_step("run-z", JournalStep("1", 1, "step", "t", "", "done", 2))
        await first.append_events("run-z", [Event("log", {"late": True}, 3, "run-z")])
        await first.finish_run(run.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)}))
        assert (await second.get_run("run-z")).status == "running"  # type: ignore[union-attr]
        assert [s.step for s in await second.read_journal("run-z")] == ["0"]
        # The new owner writes on where the log ended (after the interrupted run_end).
        log = await second.read_events("run-z")
        assert [e.type for e in log] == ["log", "run_end"]
        step = JournalStep("1", 1, "step", "t", "", "done", 3)
        await second.record_step("run-z", step, [Event("run_resume", {}, 3, "run-z")])
        assert await second.heartbeat("run-z") is None
        assert [s.result for s in await second.read_journal("run-z")] == [1, 3]
