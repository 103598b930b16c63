"""SSE run streams: resume from the middle, heartbeats, end for failed/interrupted/cancelled runs,
and many subscribers on one run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx

from pyflue import Project, RunRecord
from pyflue_asgi import create_app
from tests.asgi._live import serve, sse


def _events(text: str) -> list[dict[str, object]]:
    return [m for m in sse(text) if "event" in m]


def test_resume_from_the_middle(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        run_id = client.post("/workflows/chatty?wait=result", json={"count": 10}).json()["run_id"]
        whole = _events(client.get(f"/runs/{run_id}/stream").text)
        by_header = _events(client.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": "5"}).text)
        by_query = _events(client.get(f"/runs/{run_id}/stream", params={"after": 5}).text)
        past_end = _events(client.get(f"/runs/{run_id}/stream", params={"after": 12}).text)
    assert [int(str(m["id"])) for m in whole] == list(range(1, 13))
    assert by_header == by_query == whole[5:]
    assert past_end == []


def test_a_live_run_resumes_mid_stream_and_heartbeats(project: Path) -> None:
    app = create_app(project, heartbeat=0.05, poll_interval=0.01)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        run_id = client.post("/workflows/chatty", json={"count": 6, "wait": True}).json()["run_id"]
        seen: list[dict[str, object]] = []
        with client.stream("GET", f"/runs/{run_id}/stream") as reply:
            lines = reply.iter_lines()
            buffer: list[str] = []
            for line in lines:  # read until the first half is there and a heartbeat came
                buffer.append(line)
                if line == "" and buffer[:-1]:
                    seen.extend(sse("\n".join(buffer) + "\n\n"))
                    buffer = []
                    if any(m.get("comment") == "heartbeat" for m in seen) and len(_live(seen)) >= 4:
                        break
        first = _live(seen)
        assert [m["event"] for m in first] == ["run_start", "log", "log", "log"]
        (project / "release-run").write_text("")
        rest = _events(
            client.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": str(first[-1]["id"])}).text
        )
    assert [m["event"] for m in rest] == ["log", "log", "log", "run_end"]
    assert [int(str(m["id"])) for m in first + rest] == list(range(1, 9))


def _live(messages: list[dict[str, object]]) -> list[dict[str, object]]:
    return [m for m in messages if "event" in m]


def test_a_run_that_failed_before_its_first_event_closes_its_stream(project: Path) -> None:
    store = Project.load(project).run_store
    record = RunRecord(
        run_id="workflow:hello:early",
        workflow="hello",
        status="failed",
        started_at=datetime.now(UTC),
        ended_at=datetime.now(UTC),
        error={"type": "StoreError", "message": "disk full"},
    )

    async def seed() -> None:
        await store.create_run(
            record.model_copy(update={"status": "running", "error": None, "ended_at": None})
        )
        await store.finish_run(record)

    anyio.run(seed)
    with serve(create_app(project)) as url, httpx.Client(base_url=url, timeout=30) as client:
        messages = _events(client.get("/runs/workflow:hello:early/stream").text)
    assert [m["event"] for m in messages] == ["run_end"]
    data = messages[0]["data"]["data"]  # type: ignore[index]
    assert data["status"] == "failed" and data["error"]["message"] == "disk full"


def test_an_interrupted_run_closes_its_stream(project: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    store = Project.load(project).run_store
    orphan = RunRecord(
        run_id="workflow:chatty:orphan",
        workflow="chatty",
        started_at=datetime.now(UTC),
        owner_pid=pid,
        owner_host=socket.gethostname(),
    )
    anyio.run(store.create_run, orphan)
    assert pid != os.getpid()
    with serve(create_app(project)) as url, httpx.Client(base_url=url, timeout=30) as client:
        record = client.get("/runs/workflow:chatty:orphan").json()
        messages = _events(client.get("/runs/workflow:chatty:orphan/stream").text)
    assert record["status"] == "interrupted"  # marked at start-up by the lifespan
    assert messages[-1]["event"] == "run_end"
    assert messages[-1]["data"]["data"]["status"] == "interrupted"  # type: ignore[index]


async def test_200_streams_on_one_run(project: Path) -> None:
    app = create_app(project, poll_interval=0.02, heartbeat=1)
    with serve(app) as url:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            run_id = (await client.post("/workflows/chatty", json={"count": 20, "wait": True})).json()[
                "run_id"
            ]
            connected = 0
            all_connected = anyio.Event()
            ends: list[list[str]] = []

            async def follow() -> None:
                nonlocal connected
                kinds: list[str] = []
                async with client.stream("GET", f"/runs/{run_id}/stream") as reply:
                    async for line in reply.aiter_lines():
                        if line.startswith("event: "):
                            kinds.append(line[7:])
                            if kinds == ["run_start"]:
                                connected += 1
                                if connected == 200:
                                    all_connected.set()
                ends.append(kinds)

            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(follow)
                await all_connected.wait()  # every subscriber has its first event: let the run go on
                await anyio.Path(project / "release-run").write_text("")
    assert len(ends) == 200
    assert all(kinds == ["run_start", *["log"] * 20, "run_end"] for kinds in ends)
    assert not app.state.serving


def test_subscribers_behind_the_window_catch_up_from_the_store(project: Path) -> None:
    with (
        serve(create_app(project, feed_window=2, poll_interval=0.01)) as url,
        httpx.Client(base_url=url) as client,
    ):
        run_id = client.post("/workflows/chatty?wait=result", json={"count": 30}).json()["run_id"]
        whole = _events(client.get(f"/runs/{run_id}/stream").text)
        tail = _events(client.get(f"/runs/{run_id}/stream", params={"after": 7}).text)
    assert [int(str(m["id"])) for m in whole] == list(range(1, 33))
    assert tail == whole[7:]
