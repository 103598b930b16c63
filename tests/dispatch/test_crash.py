"""Durable dispatch across real processes: workers killed with ``kill -9`` on a real SQLite file.

The workers are ``_scripts/worker.py`` subprocesses (``Dispatcher(project, lease_seconds=1.0)``,
alternately on asyncio and trio); the project's agent answers ``echo: <input>`` through a
``FunctionModel``. Sizes: 1 000 inputs over 20 sessions with 5 kills for the crash test, 200 over
10 sessions for two workers at once.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_core import from_json

from pyflue import Dispatcher, Project, Runtime, dispatch, list_dispatches, wait_dispatch
from pyflue.dispatching import dispatch_store
from pyflue.loop import UNKNOWN_OUTCOME
from pyflue.models.messages import UserMessage, text_of
from pyflue.stores.dispatches import Attempt, DispatchRecord
from pyflue.stores.sessions import SessionKey

from ._scripts.agents import CAREFUL, ECHO

SCRIPTS = Path(__file__).parent / "_scripts"
REPO = Path(__file__).parents[2]
INSTANCE = "u"


def _project(tmp_path: Path) -> Path:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "echo.py").write_text(ECHO)
    (agents / "careful.py").write_text(CAREFUL)
    return tmp_path


class _Worker:
    """One ``worker.py`` process; its output goes to a file the test reads."""

    def __init__(self, project: Path, n: int, *args: str, backend: str = "asyncio", delay: float = 0.05):
        self.log = project / f"worker-{n}.log"
        env = {**os.environ, "ECHO_DELAY": str(delay), "PYTHONPATH": str(REPO)}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "worker.py"), str(project), "--backend", backend, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.name = self._ready()

    def _ready(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                if line.startswith("ready "):
                    return line.split(" ", 1)[1]
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.process.kill()
        pytest.fail(f"the worker did not start:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float = 60) -> None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the worker did not finish:\n{self.log.read_text()[-3000:]}")
        assert code == 0, self.log.read_text()[-3000:]


def _run(function: Any, *args: Any) -> Any:
    """Run a store check in this (sync) test, in a runtime of its own."""

    async def main() -> Any:
        async with Runtime():
            return await function(*args)

    return anyio.run(main)


async def _fill(project: Path, sessions: int, per_session: int) -> dict[str, list[str]]:
    """Dispatch ``sessions * per_session`` inputs: sessions concurrently, each session's inputs in
    order. Returns each session's dispatch ids in dispatch order."""
    ids: dict[str, list[str]] = {f"s{k}": [] for k in range(sessions)}

    async def one_session(session: str) -> None:
        for i in range(per_session):
            receipt = await dispatch(
                "echo", id=INSTANCE, session=session, input=f"{session}-{i}", project=project, max_attempts=10
            )
            ids[session].append(receipt.dispatch_id)

    async with anyio.create_task_group() as group:
        for session in ids:
            group.start_soon(one_session, session)
    return ids


async def _all(project: Path, status: str | None = None) -> list[DispatchRecord]:
    records: list[DispatchRecord] = []
    cursor = None
    while True:
        page = await list_dispatches(status=status, limit=500, cursor=cursor, project=project)
        records.extend(page)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


async def _running_of(project: Path, worker: str) -> set[str]:
    return {r.dispatch_id for r in await _all(project, "running") if r.worker == worker}


async def _outcomes(
    project: Path, sessions: list[str]
) -> tuple[dict[str, DispatchRecord], dict[str, list[Attempt]], dict[str, list[str]]]:
    """Every record, every record's attempts, and each session's stored user inputs in order."""
    store = dispatch_store(project)
    records = {r.dispatch_id: r for r in await _all(project)}
    attempts = {dispatch_id: await store.attempts(dispatch_id) for dispatch_id in records}
    loaded = Project.load(project)
    inputs = {}
    for session in sessions:
        history = await loaded.session_store.load(SessionKey("echo", INSTANCE, session))
        inputs[session] = [text_of(m) for m in history if isinstance(m, UserMessage)]
    return records, attempts, inputs


def _no_overlap(attempts: list[Attempt]) -> None:
    """Attempts (of one item, or of one session's items in order) ran one after the other."""
    for earlier, later in itertools.pairwise(attempts):
        assert earlier.ended_at is not None, earlier
        assert earlier.ended_at <= later.started_at, (earlier, later)


def _check_delivered_in_order(
    ids: dict[str, list[str]],
    records: dict[str, DispatchRecord],
    attempts: dict[str, list[Attempt]],
    inputs: dict[str, list[str]],
) -> None:
    """Every item delivered once to completion, each attempt recorded, per-session order kept."""
    assert len(records) == sum(len(v) for v in ids.values())
    for session, session_ids in ids.items():
        for dispatch_id in session_ids:
            record, tries = records[dispatch_id], attempts[dispatch_id]
            assert record.status == "delivered", record
            assert record.outcome is not None and record.outcome.text == f"echo: {record.input}"
            assert record.attempts == len(tries) == [a.number for a in tries][-1]
            statuses = [a.status for a in tries]
            assert statuses.count("delivered") == 1 and statuses[-1] == "delivered", statuses
            assert set(statuses) <= {"delivered", "crashed", "failed"}, statuses
            _no_overlap(tries)
        # Per-session order: every attempt of an item ended before the next item's first began.
        _no_overlap([a for dispatch_id in session_ids for a in attempts[dispatch_id]])
        # The stored history: first occurrences in dispatch order; a repeat (at-least-once) only of
        # an item one of whose attempts crashed after its turn was stored.
        expected = [records[d].input for d in session_ids]
        first = list(dict.fromkeys(inputs[session]))
        assert first == expected, (session, first[:5], expected[:5])
        crashed = {records[d].input for d in session_ids if any(a.status == "crashed" for a in attempts[d])}
        repeats = [text for text in inputs[session] if inputs[session].count(text) > 1]
        assert set(repeats) <= crashed, (session, repeats)


def test_kill_9_at_random_moments_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    project = _project(tmp_path)
    ids = _run(_fill, project, 20, 50)
    rng = random.Random(1234)
    hit: dict[str, set[str]] = {}  # a killed worker's name -> the items it held when killed
    for n in range(5):
        worker = _Worker(project, n, backend=("asyncio", "trio")[n % 2])
        time.sleep(rng.uniform(0.2, 1.5))
        worker.kill9()
        hit[worker.name] = _run(_running_of, project, worker.name)
    _Worker(project, 5, "--until-idle").wait(120)

    records, attempts, inputs = _run(_outcomes, project, sorted(ids))
    _check_delivered_in_order(ids, records, attempts, inputs)
    crashed = [a for tries in attempts.values() for a in tries if a.status == "crashed"]
    assert crashed, "no kill hit an item in flight"
    assert all(a.error is not None and a.error["type"] == "WorkerLostError" for a in crashed)
    # Every item a kill caught in flight shows that worker's attempt as crashed. (A live worker's
    # attempt can be closed crashed too, if a stall outlasted its lease and the item was taken over.)
    assert any(hit.values())
    for name, held in hit.items():
        for dispatch_id in held:
            assert [a.status for a in attempts[dispatch_id] if a.worker == name][-1] == "crashed"


def test_two_workers_on_one_file_never_deliver_one_item_twice(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # Both are claiming before anything is queued; three slots each for ten sessions keeps both busy.
    workers = [
        _Worker(project, n, "--concurrency", "3", "--lease", "5", backend=backend, delay=0.02)
        for n, backend in enumerate(["asyncio", "trio"])
    ]
    ids = _run(_fill, project, 10, 20)
    deadline = time.monotonic() + 60
    while len(_run(_all, project, "delivered")) < 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(30)

    records, attempts, inputs = _run(_outcomes, project, sorted(ids))
    _check_delivered_in_order(ids, records, attempts, inputs)
    by_worker: dict[str, int] = defaultdict(int)
    for tries in attempts.values():
        for attempt in tries:
            by_worker[attempt.worker] += 1
    assert {w.name for w in workers} <= set(by_worker), by_worker


def test_a_tool_cut_short_by_kill_9_is_not_run_again(tmp_path: Path) -> None:
    project = _project(tmp_path)
    charges = project / "charges.txt"
    receipt = _run(lambda: dispatch("careful", id=INSTANCE, input="pay the invoice", project=project))
    first = _Worker(project, 0)
    deadline = time.monotonic() + 60
    while not charges.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert charges.read_text() == "charged\n"  # the tool is running (it sleeps for a minute)
    first.kill9()
    _Worker(project, 1, "--until-idle", backend="trio").wait(120)

    record = _run(lambda: wait_dispatch(receipt.dispatch_id, timeout=5, project=project))
    assert charges.read_text() == "charged\n"  # not charged twice
    assert record.status == "delivered" and record.outcome is not None
    # The retried operation's model call saw the call's result as "outcome unknown".
    assert record.outcome.text == f"saw: {UNKNOWN_OUTCOME}"
    tries = _run(lambda: dispatch_store(project).attempts(receipt.dispatch_id))
    assert [(a.worker, a.status) for a in tries] == [(first.name, "crashed"), (tries[1].worker, "delivered")]


async def test_wait_dispatch_from_another_process(tmp_path: Path) -> None:
    project = _project(tmp_path)
    async with Runtime():
        receipt = await dispatch("echo", id=INSTANCE, input="across processes", project=project)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, str(SCRIPTS / "waiter.py"), str(project), receipt.dispatch_id]
        async with await anyio.open_process(command, env=env) as waiter:
            assert waiter.stdout is not None
            lines = _lines(waiter.stdout)
            with anyio.fail_after(60):
                # The waiter read the item before any worker existed: it really waits.
                assert await anext(lines) == "waiting queued"
            async with Dispatcher(project, poll_interval=0.02):
                with anyio.fail_after(60):
                    seen = from_json(await anext(lines))
                    assert await waiter.wait() == 0
        mine = await wait_dispatch(receipt.dispatch_id, timeout=5, project=project)
    assert seen["status"] == "delivered" and seen["outcome"]["text"] == "echo: across processes"
    assert mine.outcome is not None and seen["outcome"]["operation_id"] == mine.outcome.operation_id


async def _lines(stream: Any) -> Any:
    """The lines a process writes to ``stream``."""
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()
