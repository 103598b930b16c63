"""Followers of PostgreSQL stores are woken by NOTIFY, not by their poll: every follower here is given a
60 s poll interval (and heartbeat), and must see a change another process commits long before that —
within a generous 20 s timeout. A follower that polled would wait out the 60 s and fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from pyflue import iter_dispatch_events, wait_dispatch
from pyflue.stores.dispatches import DispatchRecord
from pyflue.stores.postgres import PostgresDatabase
from pyflue_asgi import create_app
from tests.asgi._live import LiveServer, make_project

SCRIPT = Path(__file__).resolve().parent / "_scripts" / "changer.py"
POLL = 60.0  # what a polling follower would wait: far beyond every timeout below
PATIENCE = 20.0  # generous, and much shorter than POLL


class Changer:
    """``changer.py`` in a process group of its own: it changes a run or a dispatch when told to."""

    def __init__(self, url: str, schema: str, kind: str, target: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), url, schema, kind, target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        if command != "end":
            assert self.readline() == "ok"

    def finish(self) -> None:
        self.tell("end")
        assert self.proc.wait(timeout=PATIENCE) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def changing(url: str, schema: str, kind: str, target: str) -> Iterator[Changer]:
    changer = Changer(url, schema, kind, target)
    try:
        yield changer
    finally:
        changer.kill()


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) of each SSE message; heartbeats are skipped."""
    kind = data = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and kind:
            yield kind, data
            kind = data = ""


@contextmanager
def serving(root: Path) -> Iterator[str]:
    """A uvicorn server of a project kept in PostgreSQL (schema ``pyflue``, set by the caller's
    ``PYFLUE_DATABASE_URL``), whose followers poll every 60 s and heartbeat every 60 s."""
    with LiveServer(create_app(make_project(root), poll_interval=POLL, heartbeat=POLL)) as url:
        yield url


@pytest.fixture
def in_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PYFLUE_DATABASE_URL", postgres_url)
    return postgres_url


def test_a_run_stream_is_woken_by_another_process_commits(tmp_path: Path, in_postgres: str) -> None:
    run_id = f"workflow:changed:{tmp_path.name}"
    with changing(in_postgres, "pyflue", "run", run_id) as changer, serving(tmp_path) as served:
        timeout = httpx.Timeout(PATIENCE)
        with httpx.stream("GET", f"{served}/runs/{run_id}/stream", timeout=timeout) as response:
            assert response.status_code == 200
            events = sse_events(response)
            assert next(events)[0] == "log"  # event 1: read when the stream starts
            changer.tell("event 2")  # committed while the feed waits on its watch
            kind, data = next(events)
            assert (kind, '"n":2' in data) == ("log", True)
            changer.tell("event 3")
            assert '"n":3' in next(events)[1]
            changer.finish()
            assert next(events)[0] == "run_end"
            assert list(events) == []  # the stream ends after run_end


def test_a_dispatch_stream_is_woken_by_another_process_commits(tmp_path: Path, in_postgres: str) -> None:
    async def enqueue() -> str:
        async with PostgresDatabase(in_postgres, schema="pyflue") as db:
            record = await db.dispatch_store().enqueue(
                DispatchRecord(agent="elsewhere", instance_id=f"i{os.getpid()}", session_id="s", input="x")
            )
            return record.dispatch_id

    dispatch_id = anyio.run(enqueue)
    # claimed by the other process before the app (and its worker) starts
    with changing(in_postgres, "pyflue", "dispatch", dispatch_id) as changer, serving(tmp_path) as served:
        with httpx.stream(
            "GET", f"{served}/dispatches/{dispatch_id}/stream", timeout=httpx.Timeout(PATIENCE)
        ) as response:
            assert response.status_code == 200
            events = sse_events(response)
            assert next(events)[0] == "log"
            changer.tell("event 2")
            assert '"n":2' in next(events)[1]
            changer.finish()  # delivered: the stream ends once its events are sent
            assert list(events) == []


async def test_wait_dispatch_and_a_follower_are_woken_by_another_process(
    postgres_url: str, new_schema: object
) -> None:
    schema = new_schema()  # type: ignore[operator]
    async with PostgresDatabase(postgres_url, schema=schema) as db:
        store = db.dispatch_store()
        record = await store.enqueue(DispatchRecord(agent="a", instance_id="i", session_id="s", input="x"))
        changer = await anyio.to_thread.run_sync(
            Changer, postgres_url, schema, "dispatch", record.dispatch_id
        )
        try:
            finals: list[DispatchRecord] = []
            seen: list[int] = []

            async def wait() -> None:
                finals.append(await wait_dispatch(record.dispatch_id, store=store, poll_interval=POLL))

            with anyio.fail_after(PATIENCE):
                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    follower = iter_dispatch_events(
                        record.dispatch_id, follow=True, store=store, poll_interval=POLL
                    )
                    async for event in follower:
                        seen.append(event.data["n"])
                        if event.seq == 1:  # the follower waits on its watch from here on
                            await anyio.to_thread.run_sync(changer.tell, "event 2")
                        elif event.seq == 2:
                            await anyio.to_thread.run_sync(changer.finish)
        finally:
            await anyio.to_thread.run_sync(changer.kill)
    assert seen == [1, 2]  # and the follower ended: the dispatch is finished
    assert [r.status for r in finals] == ["delivered"]
