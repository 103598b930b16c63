"""Processes standing for hosts, on one PostgreSQL database: claimers killed with SIGKILL, a run whose
owner is killed, a follower woken by NOTIFY."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from pyflue.events import Event
from pyflue.stores.dispatches import Attempt, DispatchRecord
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.runs import RunRecord

SCRIPTS = Path(__file__).with_name("_scripts")


def _spawn(script: str, *args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """A process in a process group of its own, as on another host."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args], cwd=cwd, start_new_session=True, text=True, **kwargs
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_claimers_on_several_hosts_lose_nothing_and_keep_order(
    postgres_url: str, new_schema: Callable[[], str], tmp_path: Path
) -> None:
    """2 000 inputs over 40 sessions; three claimer processes, each in its own process group with its
    own copy of the project; claimers are killed with SIGKILL at random and replaced. Every input ends
    delivered, no attempt was claimed twice, a killed claimer's item was taken over only after its
    lease expired, and each session's attempts ran one at a time in acceptance order."""
    schema, lease = new_schema(), 1.0
    sessions = [f"session {n}" for n in range(40)]
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "echo.py").write_text("# an agent of the project\n")
    (project / "answer.txt").write_text("done\n")

    async def fill() -> list[DispatchRecord]:
        async with PostgresDatabase(postgres_url, schema=schema) as db:
            store = db.dispatch_store()
            made: dict[int, DispatchRecord] = {}

            async def one(n: int) -> None:
                made[n] = await store.enqueue(
                    DispatchRecord(agent="echo", instance_id="i", session_id=sessions[n % 40], input=str(n))
                )

            for start in range(0, 2000, 200):  # in acceptance order per session: batches in sequence
                async with anyio.create_task_group() as group:
                    for n in range(start, start + 200):
                        group.start_soon(one, n)
            return [made[n] for n in range(2000)]

    made = anyio.run(fill)
    rng = random.Random(7)
    counter = itertools.count()
    logs: list[Path] = []
    current: dict[int, Path] = {}

    def start(slot: int) -> subprocess.Popen[str]:
        n = next(counter)
        home = tmp_path / f"host-{n}"
        shutil.copytree(project, home)
        log = tmp_path / f"claimer-{n}.jsonl"
        logs.append(log)
        current[slot] = log
        backend = "trio" if n % 2 else "asyncio"
        return _spawn(
            "claimer.py", postgres_url, schema, f"w{slot}.{n}", str(lease), str(log), backend, cwd=home
        )

    procs = [start(slot) for slot in range(3)]
    kills = 0
    try:
        deadline = time.monotonic() + 80
        while kills < 4:
            slot = rng.randrange(3)
            log = current[slot]
            while procs[slot].poll() is None and not (log.exists() and log.read_text().strip()):
                assert time.monotonic() < deadline, "a claimer never claimed"
                time.sleep(0.02)  # killed once it has claimed: at a random moment of its work
            time.sleep(rng.uniform(0.0, 0.3))
            if procs[slot].poll() is not None:
                break  # the work is done
            _kill(procs[slot])
            kills += 1
            procs[slot] = start(slot)
        for proc in procs:
            assert proc.wait(timeout=max(deadline - time.monotonic(), 1)) == 0
    finally:
        for proc in procs:
            _kill(proc)

    async def read() -> tuple[list[DispatchRecord], dict[str, list[Attempt]]]:
        async with PostgresDatabase(postgres_url, schema=schema) as db:
            store = db.dispatch_store()
            records: list[DispatchRecord] = []
            cursor = None
            while True:
                page = await store.list(limit=500, cursor=cursor)
                records += page.dispatches
                if (cursor := page.next_cursor) is None:
                    break
            return records[::-1], {r.dispatch_id: await store.attempts(r.dispatch_id) for r in records}

    records, attempts = anyio.run(read)
    assert kills >= 1
    assert [r.dispatch_id for r in records] == [r.dispatch_id for r in made]  # nothing lost or invented
    assert all(
        r.status == "delivered" and r.outcome and r.outcome.text.startswith("done by") for r in records
    )
    lines = [json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()]
    claims = [(c["id"], c["attempt"]) for c in lines if c["step"] == "claim"]
    assert len(claims) == len(set(claims))  # no attempt was claimed twice
    crashed = 0
    for record in records:
        tries = attempts[record.dispatch_id]
        assert [a.number for a in tries] == list(range(1, len(tries) + 1))
        assert tries[-1].status == "delivered"
        for earlier, later in itertools.pairwise(tries):
            crashed += 1
            assert earlier.status == "crashed"
            # no two live leases: taken over only once the killed claimer's lease had expired
            assert (later.started_at - earlier.started_at).total_seconds() >= lease
    assert crashed >= 1  # some claimer died holding leases, and its items were taken over
    by_session: defaultdict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for record in records:  # acceptance order
        by_session[record.session_id] += [(a.started_at, a.ended_at) for a in attempts[record.dispatch_id]]
    for spans in by_session.values():
        for (_, end), (begin, _) in itertools.pairwise(spans):
            assert end is not None and end <= begin  # one at a time, in acceptance order


def test_a_run_whose_owner_is_killed_becomes_interrupted(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    """The owner heartbeats: its run stays running for several leases. Killed with SIGKILL, its run
    is interrupted by the next read once the lease expired, with a run_end after its last event."""
    schema, lease = new_schema(), 2.0
    run_id = "workflow:owned:1"
    owner = _spawn("owner.py", postgres_url, schema, run_id, str(lease), stdout=subprocess.PIPE)

    async def status_after(seconds: float) -> str:
        await anyio.sleep(seconds)
        async with PostgresDatabase(postgres_url, schema=schema) as db:
            record = await db.run_store(run_lease=lease).get_run(run_id)
            assert record is not None
            return record.status

    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        assert anyio.run(status_after, lease * 2) == "running"  # alive: heartbeats keep it running
    finally:
        _kill(owner)
    killed = time.monotonic()

    async def wait_interrupted() -> tuple[RunRecord, list[Event]]:
        async with PostgresDatabase(postgres_url, schema=schema) as db:
            store = db.run_store(run_lease=lease)
            while True:
                record = await store.get_run(run_id)
                assert record is not None
                if record.status != "running":
                    return record, await store.read_events(run_id)
                assert time.monotonic() - killed < lease + 10, "the run was never interrupted"
                await anyio.sleep(0.1)

    record, events = anyio.run(wait_interrupted)
    assert record.status == "interrupted" and record.error is not None
    assert record.error["reason"] == "owner_died"
    assert [e.seq for e in events] == [1, 2, 3, 4] and events[-1].type == "run_end"
    assert events[-1].data["status"] == "interrupted"
    assert events[-1].event_id > max(e.event_id for e in events[:-1])


def test_a_follower_in_another_process_is_woken_by_notify(
    postgres_url: str, new_schema: Callable[[], str], tmp_path: Path
) -> None:
    """A follower (trio, another process) waits on its run's watch with a 60 s timeout; each event
    committed by this process (asyncio) wakes it through NOTIFY, well within 100 ms in the median."""
    schema = new_schema()
    run_id = "workflow:followed:1"
    log = tmp_path / "follower.jsonl"
    committed: dict[int, float] = {}

    async def write(follower: subprocess.Popen[str]) -> None:
        async with PostgresDatabase(postgres_url, schema=schema) as db:
            store = db.run_store()
            started = datetime.now(UTC)
            record = RunRecord(run_id=run_id, workflow="followed", started_at=started)
            await store.create_run(record)
            assert follower.stdout is not None
            assert await anyio.to_thread.run_sync(follower.stdout.readline) == "ready\n"
            for seq in range(1, 11):
                await anyio.sleep(0.15)
                await store.append_events(run_id, [Event("log", {"n": seq}, seq, run_id)])
                committed[seq] = time.time()
            await anyio.sleep(0.15)
            end = Event("run_end", {"status": "completed"}, 11, run_id)
            await store.finish_run(
                record.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)}), [end]
            )
            committed[11] = time.time()

    follower = _spawn("follower.py", postgres_url, schema, run_id, str(log), stdout=subprocess.PIPE)
    try:
        anyio.run(write, follower)
        assert follower.wait(timeout=30) == 0
    finally:
        _kill(follower)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    seen = {line["seq"]: line["seen"] for line in lines if "seq" in line}
    assert sorted(seen) == list(range(1, 12))
    assert all(line["woke"] for line in lines if "woke" in line)  # never the 60 s timeout
    latencies = [seen[seq] - committed[seq] for seq in committed]
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 1.0, latencies
