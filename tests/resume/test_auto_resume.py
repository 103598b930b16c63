"""``pyflue worker --auto-resume`` in real processes: a run killed on host A is resumed by one of the
workers sharing its store, without being asked, and finishes with the uninterrupted result; a worker
killed while it runs a resumed run is replaced by another that finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.postgres.server import shared_cluster

from ._hosts import Hosts
from ._provider import Provider


def _worker(hosts: Hosts, project: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = hosts.env(kill_at)
    if hosts.database is not None:
        env["PYFLUE_DATABASE_URL"] = hosts.database[0]
    return subprocess.Popen(
        [sys.executable, "-m", "pyflue_cli", "--project", str(project), "worker", "--auto-resume"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _ended(hosts: Hosts, run_id: str, count: int) -> list[Any]:
    """The run's log once it holds ``count`` ``run_end`` events."""
    deadline = time.monotonic() + 90
    while True:
        _, events = hosts.read(run_id)
        if sum(1 for e in events if e.type == "run_end") >= count:
            return events
        assert time.monotonic() < deadline, [e.type for e in events]
        time.sleep(0.2)


def _wait_gate(hosts: Hosts, proc: subprocess.Popen[str]) -> None:
    ready = hosts.work / "ready"
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the worker never reached its gate"
        time.sleep(0.02)
    ready.unlink()


def _stop(*procs: subprocess.Popen[str]) -> list[str]:
    """Stop each worker with SIGTERM once it is serving (its banner is its first stdout line: a
    signal before its handler is installed would kill it like any process); each exits 0."""
    outs = []
    for proc in procs:
        banner = proc.stdout.readline()  # type: ignore[union-attr]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        outs.append(banner + out)
    return outs


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database of the test cluster (its default ``pyflue`` schema is this test's alone)."""
    cluster = shared_cluster(request.config)
    name = f"auto_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield cluster.url.rsplit("/", 1)[0] + "/" + name


def _check(hosts: Hosts, events: list[Any], expected: dict[str, Any], resumes: int) -> None:
    assert [e.data["status"] for e in events if e.type == "run_end"][-1] == "completed"
    final = [e for e in events if e.type == "run_end"][-1].data
    assert final["result"] == expected["result"]
    assert sum(1 for e in events if e.type == "run_resume") == resumes  # one process per attempt
    assert hosts.lines("side_effects") == ["book hotel"]


def test_a_worker_killed_while_resuming_is_replaced_by_another(
    tmp_path: Path,
    provider: Provider,
    baseline: tuple[dict[str, Any], int],
) -> None:
    expected, requests = baseline
    hosts = Hosts(tmp_path, provider, None)
    before = len(provider.requests)
    hosts.kill_at("run-w", "lookup:hotel:after")
    first = _worker(hosts, hosts.b, kill_at="between:1")
    _wait_gate(hosts, first)  # it resumed the run and runs it now
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    others = [_worker(hosts, hosts.b), _worker(hosts, hosts.a)]
    events = _ended(hosts, "run-w", 3)
    _stop(*others)
    assert [e.data["status"] for e in events if e.type == "run_end"] == [
        "interrupted",
        "interrupted",
        "completed",
    ]
    _check(hosts, events, expected, 2)
    assert len(provider.requests) - before == requests  # nothing recorded was asked again


def test_of_two_workers_on_postgres_one_resumes_the_run(
    tmp_path: Path,
    provider: Provider,
    baseline: tuple[dict[str, Any], int],
    database: str,
) -> None:
    expected, requests = baseline
    hosts = Hosts(tmp_path, provider, (database, "pyflue"))
    before = len(provider.requests)
    hosts.kill_at("run-p", "between:1")
    workers = [_worker(hosts, hosts.a), _worker(hosts, hosts.b)]
    events = _ended(hosts, "run-p", 2)
    outs = _stop(*workers)
    assert all("resuming interrupted runs" in out for out in outs)
    _check(hosts, events, expected, 1)
    assert len(provider.requests) - before == requests
