"""``pyflue dispatch``, ``dispatches``, ``worker`` and ``db upgrade``: real processes on one store.

A dispatch is handed over by one process and delivered by a worker in another; the test waits on
what the processes print and on the store, never on a clock. Agents name their model (``test``), and
the children run without ``PYFLUE_MODEL``, so the agent needing a real provider fails for real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import TIMEOUT, assert_one_line_error, child_env, cli, no_traceback, pyflue_argv, run_in_pty

_ECHO = 'from pyflue import create_agent\n\ndefault = create_agent(lambda ctx: {"model": "test"})\n'
_NEEDS_KEY = (
    "from pyflue import create_agent\n\n"
    'default = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"})\n'
)
_GATED = '''\
import os

import anyio

from pyflue import create_agent, define_tool


@define_tool
async def wait_for_gate() -> str:
    """Wait until the file named by $PYFLUE_TEST_GATE exists."""
    gate = anyio.Path(os.environ["PYFLUE_TEST_GATE"])
    while not await gate.exists():  # noqa: ASYNC110 - polling a file another process creates
        await anyio.sleep(0.02)
    return "open"


default = create_agent(lambda ctx: {"model": "test", "tools": [wait_for_gate]})
'''


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of its own (tests find their items by instance id): echo answers, needs_key fails
    (no provider key), gated waits for the test's gate file."""
    root = tmp_path_factory.mktemp("dispatch") / "desk"
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "echo.py").write_text(_ECHO)
    (root / "agents" / "needs_key.py").write_text(_NEEDS_KEY)
    (root / "agents" / "gated.py").write_text(_GATED)
    return root


def _env(gate: Path | None = None) -> dict[str, str]:
    return child_env(model=None, **({"PYFLUE_TEST_GATE": str(gate)} if gate else {}))


def _run(*args: str, cwd: Path) -> Any:
    return cli(*args, cwd=cwd, env=_env())


def _spawn(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*pyflue_argv(), *args],
        cwd=cwd,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Worker:
    """A ``pyflue worker`` process; its first line (the worker's name) is read on start."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.proc = _spawn("worker", "--lease", "5", cwd=root, env=env)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        assert self.first_line.startswith("pyflue: worker "), self.first_line + self._rest()[1]
        self.name = self.first_line.split()[2]

    def stderr_line(self, needle: str) -> str:
        assert self.proc.stderr is not None
        while line := self.proc.stderr.readline():
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} never appeared on the worker's stderr")

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(signum)
        return self._rest()

    def _rest(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def _items(root: Path, instance: str) -> list[dict[str, Any]]:
    listing = _run("dispatches", "--id", instance, "--json", cwd=root)
    assert listing.code == 0, listing.err
    items: list[dict[str, Any]] = listing.json()["dispatches"]
    return items


def _until(root: Path, instance: str, status: str) -> dict[str, Any]:
    """The instance's newest item once it has ``status`` (a ceiling, not a measurement)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        items = _items(root, instance)
        if items and items[0]["status"] == status:
            return items[0]
        time.sleep(0.1)
    raise AssertionError(f"{instance} never became {status}: {_items(root, instance)}")


# -- dispatch and deliver ------------------------------------------------------------------------


def test_wait_returns_the_outcome_a_worker_process_delivered(desk: Path, workers: list[Worker]) -> None:
    waiting = _spawn("dispatch", "echo", "w-1", "--input", "hello there", "--wait", "--json", cwd=desk)
    _until(desk, "w-1", "queued")  # accepted, and nobody delivers it yet
    worker = Worker(desk)
    workers.append(worker)
    out, err = waiting.communicate(timeout=TIMEOUT)
    assert waiting.returncode == 0, err
    record = json.loads(out)
    assert record["status"] == "delivered" and record["attempts"] == 1
    assert record["worker"] == worker.name
    assert record["outcome"]["text"] and record["outcome"]["operation_id"]
    assert record["outcome"]["usage"]["requests"] >= 1
    code, _, stopped = worker.stop(signal.SIGINT)
    assert code == 0, stopped
    assert "stopping (interrupted by Ctrl-C (SIGINT))" in stopped
    assert "Traceback" not in stopped and "Traceback" not in err


def test_worker_stop_lets_a_delivery_in_flight_finish(workers: list[Worker], tmp_path: Path) -> None:
    desk, gate = tmp_path / "gated", tmp_path / "gate"
    (desk / "agents").mkdir(parents=True)
    (desk / "agents" / "gated.py").write_text(_GATED)
    receipt = _run("dispatch", "gated", "g-1", "--input", "go", "--json", cwd=desk).json()
    worker = Worker(desk, env=_env(gate))
    workers.append(worker)
    try:
        _until(desk, "g-1", "running")
        worker.proc.send_signal(signal.SIGTERM)
        assert "1 delivery in flight" in worker.stderr_line("stopping (terminated (SIGTERM))")
    finally:
        gate.touch()
    code, _, err = worker._rest()
    assert code == 0, err
    [item] = _items(desk, "g-1")
    assert item["dispatch_id"] == receipt["dispatch_id"]
    assert (item["status"], item["attempts"], item["worker"]) == ("delivered", 1, worker.name)


def test_wait_exits_1_when_the_outcome_failed(desk: Path, workers: list[Worker]) -> None:
    workers.append(Worker(desk))
    result = _run("dispatch", "needs_key", "f-1", "--input", "hi", "--wait", cwd=desk)
    assert result.code == 1 and result.out == ""
    [line] = result.err.strip().splitlines()
    assert " failed: ConfigError: " in line and "ANTHROPIC_API_KEY" in line
    [item] = _items(desk, "f-1")
    assert item["status"] == "failed" and item["outcome"]["error"]["type"] == "ConfigError"


def test_wait_exits_1_when_the_dispatch_is_cancelled(desk: Path) -> None:
    import functools

    import anyio

    from pyflue.dispatching import cancel_dispatch

    waiting = _spawn("dispatch", "echo", "c-1", "--input", "never mind", "--wait", cwd=desk)
    item = _until(desk, "c-1", "queued")
    anyio.run(functools.partial(cancel_dispatch, item["dispatch_id"], "changed my mind", project=desk))
    out, err = waiting.communicate(timeout=TIMEOUT)
    assert waiting.returncode == 1 and out == ""
    assert err.strip().splitlines() == [f"pyflue: {item['dispatch_id']} cancelled: changed my mind"]


def test_ctrl_c_stops_waiting_not_the_dispatch(desk: Path) -> None:
    waiting = _spawn("dispatch", "echo", "i-1", "--input", "later", "--wait", cwd=desk)
    _until(desk, "i-1", "queued")
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=TIMEOUT)
    assert waiting.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert _until(desk, "i-1", "queued")["attempts"] == 0  # still there, for a worker


def test_wait_timeout_leaves_the_dispatch_queued(desk: Path) -> None:
    result = _run("dispatch", "echo", "t-1", "--input", "hi", "--wait", "--timeout", "0.2", cwd=desk)
    [item] = _items(desk, "t-1")
    assert_one_line_error(result, 1, "timed out", item["dispatch_id"], "queued")


# -- receipts, keys, listing ----------------------------------------------------------------------


def test_dispatch_prints_the_receipt(desk: Path) -> None:
    plain = _run("dispatch", "echo", "r-1", "--input", "one", "--session", "s", cwd=desk)
    assert plain.code == 0, plain.err
    dispatch_id = plain.out.strip()  # not a terminal: just the id, for `id=$(pyflue dispatch ...)`
    receipt = _run("dispatch", "echo", "r-1", "--input", "two", "--session", "s", "--json", cwd=desk).json()
    assert set(receipt) == {"dispatch_id", "agent", "instance_id", "session_id", "accepted_at", "status"}
    assert (receipt["agent"], receipt["instance_id"], receipt["session_id"]) == ("echo", "r-1", "s")
    assert receipt["status"] == "queued" and receipt["dispatch_id"] != dispatch_id
    assert [i["dispatch_id"] for i in _items(desk, "r-1")] == [receipt["dispatch_id"], dispatch_id]


def test_stdin_input(desk: Path) -> None:
    result = cli("dispatch", "echo", "in-1", "--input", "-", cwd=desk, env=_env(), input="from stdin\n")
    assert result.code == 0, result.err
    assert _items(desk, "in-1")[0]["status"] == "queued"


def test_a_key_makes_dispatch_idempotent(desk: Path) -> None:
    first = _run("dispatch", "echo", "k-1", "--input", "pay", "--key", "order-7", "--json", cwd=desk).json()
    again = _run("dispatch", "echo", "k-1", "--input", "pay", "--key", "order-7", "--json", cwd=desk).json()
    assert again == first
    assert [i["key"] for i in _items(desk, "k-1")] == ["order-7"]  # enqueued once
    other = _run("dispatch", "echo", "k-2", "--input", "pay", "--key", "order-7", cwd=desk)
    assert_one_line_error(other, 2, "ConfigError", "order-7")
    assert _items(desk, "k-2") == []


def test_dispatches_filters_and_pages(tmp_path: Path) -> None:
    root = tmp_path / "pages"
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "echo.py").write_text(_ECHO)
    ids = [_run("dispatch", "echo", f"p-{n % 2}", "--input", f"m{n}", cwd=root).out.strip() for n in range(3)]
    rows = _run("dispatches", cwd=root).jsonl()  # not a terminal: JSON lines, newest first
    assert [r["dispatch_id"] for r in rows] == ids[::-1]
    assert "input" not in rows[0]
    assert [r["dispatch_id"] for r in _run("dispatches", "--id", "p-0", cwd=root).jsonl()] == [ids[2], ids[0]]
    assert _run("dispatches", "--status", "delivered", cwd=root).out == ""
    assert _run("dispatches", "--agent", "nobody", cwd=root).out == ""
    first = _run("dispatches", "--limit", "2", "--json", cwd=root).json()
    assert [r["dispatch_id"] for r in first["dispatches"]] == ids[:0:-1]
    second = _run("dispatches", "--limit", "2", "--cursor", first["next_cursor"], "--json", cwd=root).json()
    assert [r["dispatch_id"] for r in second["dispatches"]] == [ids[0]] and second["next_cursor"] is None


def test_dispatches_is_a_table_on_a_terminal(desk: Path) -> None:
    dispatch_id = _run("dispatch", "echo", "tty-1", "--input", "hi", cwd=desk).out.strip()
    screen = run_in_pty("dispatches", "--id", "tty-1", cwd=desk, env=_env())
    assert screen.code == 0, screen.err
    assert "dispatch id" in screen.screen and dispatch_id in screen.screen
    assert "echo / tty-1 / default" in screen.screen and "queued" in screen.screen
    assert "{" not in screen.screen


# -- bad input -------------------------------------------------------------------------------------


def test_unknown_agent_lists_the_agents(desk: Path) -> None:
    result = _run("dispatch", "nobody", "x", "--input", "hi", cwd=desk)
    assert_one_line_error(result, 2, "nobody", "echo", "gated")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("echo", "x", "--input", "   "), ("ConfigError", "empty")),
        (("echo", "", "--input", "hi"), ("InvalidIdError", "instance id")),
        (("echo", "bad\x01id", "--input", "hi"), ("InvalidIdError", "control characters")),
        (("echo", "x", "--input", "hi", "--session", "x" * 300), ("InvalidIdError", "session id")),
        (("echo", "x", "--input", "hi", "--timeout", "5"), ("--timeout", "--wait")),
        (("echo", "x", "--input", "hi", "--wait", "--timeout", "-1"), ("--timeout", "above 0")),
        (("echo", "x"), ("--input",)),
    ],
)
def test_bad_dispatch_input_exits_2_and_records_nothing(
    desk: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = _run("dispatches", "--limit", "1", "--json", cwd=desk).json()["dispatches"]
    assert_one_line_error(_run("dispatch", *args, cwd=desk), 2, *needles)
    assert _run("dispatches", "--limit", "1", "--json", cwd=desk).json()["dispatches"] == before


def test_bad_listing_arguments_exit_2(desk: Path) -> None:
    assert_one_line_error(_run("dispatches", "--cursor", "garbage!", cwd=desk), 2, "cursor")
    assert_one_line_error(_run("dispatches", "--status", "lost", cwd=desk), 2, "invalid choice")
    assert_one_line_error(_run("worker", "--concurrency", "0", cwd=desk), 2, "at least 1")
    assert_one_line_error(_run("worker", "--lease", "inf", cwd=desk), 2, "above 0")


def test_no_project_exits_2(tmp_path: Path) -> None:
    for args in (("dispatch", "echo", "x", "--input", "hi"), ("dispatches",), ("worker",)):
        assert_one_line_error(_run(*args, cwd=tmp_path), 2, "no PyFlue project")


# -- db upgrade ------------------------------------------------------------------------------------


def test_db_upgrade_without_a_url_says_sqlite_needs_none(tmp_path: Path) -> None:
    result = _run("db", "upgrade", cwd=tmp_path)
    assert result.code == 0 and "needs no upgrade" in result.out and result.err == ""
    assert _run("db", "upgrade", "--json", cwd=tmp_path).json()["backend"] == "sqlite"


def test_db_upgrade_bad_url_exits_2(tmp_path: Path) -> None:
    env = _env() | {"PYFLUE_DATABASE_URL": "sqlite:///x.db"}
    assert_one_line_error(cli("db", "upgrade", cwd=tmp_path, env=env), 2, "ConfigError", "postgresql://")
    assert_one_line_error(_run("db", "migrate", cwd=tmp_path), 2, "invalid choice")


def test_db_upgrade_migrates_a_postgres_schema(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from pyflue.stores.postgres import SCHEMA_VERSION
    from tests.postgres.server import shared_cluster

    url = shared_cluster(request.config).url
    schema = f"cli_upgrade_{tmp_path.name}"[:60]
    env = _env() | {"PYFLUE_DATABASE_URL": url}
    first = cli("db", "upgrade", "--schema", schema, cwd=tmp_path, env=env)
    assert first.code == 0, first.err
    assert f"schema {schema!r} is at version {SCHEMA_VERSION}" in first.out
    assert "postgres@" not in first.out  # the URL's user and password are not printed
    again = cli("db", "upgrade", "--url", url, "--schema", schema, "--json", cwd=tmp_path, env=_env()).json()
    assert again == {
        "backend": "postgresql",
        "database": again["database"],
        "schema": schema,
        "version": SCHEMA_VERSION,
    }
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(f'SELECT max(version) FROM "{schema}".schema_version').fetchone()
    assert row is not None and row[0] == SCHEMA_VERSION
    no_traceback(first)
