"""The lease of a runtime's PostgreSQL runs: ``Runtime(run_lease_seconds=)`` or
``PYFLUE_RUN_LEASE_SECONDS`` decides how soon a dead owner's run is ``interrupted``."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from ulid import ULID

from pyflue.errors import ConfigError
from pyflue.runtime import Runtime
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.postgres.schema import NOW_US

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "_scripts" / "runtime_owner.py"
HANG = """\
import anyio

async def run(ctx):
    print("ready", flush=True)
    await anyio.sleep(3600)
"""


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_killed_owner_s_run_is_interrupted_after_the_runtime_s_lease(
    how: str, postgres_url: str, tmp_path: Path
) -> None:
    """The owner's runtime has a 1 s run lease (its option, or the environment variable). Right after
    the owner is killed with SIGKILL its run's lease has at most a second left (not the default 15),
    and the run is interrupted well before a 15 s lease could have run out."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "hang.py").write_text(HANG)
    run_id = f"workflow:hang:{ULID()}"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYFLUE_DATABASE_URL", "PYFLUE_RUN_LEASE_SECONDS")
    }
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, str(SCRIPT), postgres_url, str(tmp_path), run_id]
    if how == "option":
        args.append("1")
    else:
        env["PYFLUE_RUN_LEASE_SECONDS"] = "1"
    owner = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready", owner.stderr
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)
        owner.wait()
    killed = time.monotonic()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SET search_path TO pyflue")
        row = conn.execute(
            f"SELECT status, lease_expires - {NOW_US} FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None and row[0] == "running"
    assert row[1] <= 1_000_000, f"{row[1] / 1e6:.1f} s of lease left: the 1 s lease was not used"

    async def wait_interrupted() -> str:
        async with PostgresDatabase(postgres_url) as db:
            store = db.run_store()
            while True:
                record = await store.get_run(run_id)
                assert record is not None
                if record.status != "running":
                    assert record.error is not None and record.error["reason"] == "owner_died"
                    return record.status
                assert time.monotonic() - killed < 8, "the run was not interrupted within 8 s"
                await anyio.sleep(0.1)

    assert anyio.run(wait_interrupted) == "interrupted"


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, -math.inf, True, "15"])
def test_a_bad_run_lease_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="run_lease_seconds must be a positive, finite number"):
        Runtime(run_lease_seconds=bad)  # type: ignore[arg-type]


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFLUE_RUN_LEASE_SECONDS", "nonsense")
    assert Runtime(run_lease_seconds=2.5).run_lease == 2.5
    monkeypatch.delenv("PYFLUE_RUN_LEASE_SECONDS")
    assert Runtime().run_lease is None  # the run store's default


_ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@given(_ENV_TEXT)
@example("1")
@example(" 0.25 ")
@example("0")
@example("-3")
@example("inf")
@example("nan")
@example("1e-400")
@example("15s")
def test_the_environment_variable_is_a_positive_finite_number_or_a_config_error(raw: str) -> None:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYFLUE_RUN_LEASE_SECONDS", raw)
        runtime = Runtime()
        if not raw.strip():
            assert runtime.run_lease is None
        elif 0 < value < math.inf:
            assert runtime.run_lease == value
        else:
            with pytest.raises(ConfigError, match="PYFLUE_RUN_LEASE_SECONDS must be a positive, finite"):
                _ = runtime.run_lease


async def test_a_bad_environment_variable_fails_when_the_run_store_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYFLUE_RUN_LEASE_SECONDS", "15s")
    async with Runtime(database_url="postgresql://nobody@127.0.0.1:1/none") as rt:
        with pytest.raises(ConfigError, match=r"PYFLUE_RUN_LEASE_SECONDS .* got '15s'"):
            rt.run_store_for(tmp_path / "pyflue.db")
