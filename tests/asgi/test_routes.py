"""Every route over a real uvicorn: agents, workflows, runs, their errors, and the envelope."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pyflue_asgi import create_app
from tests.asgi._live import serve, sse


def test_health_and_listings(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        agents = client.get("/agents").json()["agents"]
        assert [a["name"] for a in agents] == ["echo", "gated"]
        assert agents[0]["description"] == "Answers offline."
        flows = {w["name"]: w for w in client.get("/workflows").json()["workflows"]}
        assert sorted(flows) == ["boom", "chatty", "hello", "stuck"]
        assert flows["hello"]["payload_schema"]["required"] == ["name"]
        assert flows["boom"]["payload_schema"] is None


def test_prompt_returns_the_result_and_keeps_the_conversation(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        first = client.post("/agents/echo/case-1", json={"message": "hi", "session": "s1"})
        assert first.status_code == 200, first.text
        result = first.json()["result"]
        assert result["text"] == "success (no tool calls)"
        assert result["model"] == "test/test"
        assert result["finish_reason"] == "stop"
        assert result["usage"]["requests"] == 1
        # PyFlue 0.2.0's body: {"payload": {"prompt": ...}}
        second = client.post("/agents/echo/case-1", json={"payload": {"prompt": "again", "session": "s1"}})
        assert second.status_code == 200
        assert second.json()["result"]["operation_id"] != result["operation_id"]


def test_prompt_with_a_result_schema_returns_output(shared_url: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    with httpx.Client(base_url=shared_url) as client:
        reply = client.post("/agents/echo/typed", json={"message": "where?", "result_schema": schema})
    assert reply.status_code == 200, reply.text
    assert isinstance(reply.json()["result"]["output"]["city"], str)


def test_prompt_streams_events_then_the_result(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        reply = client.post(
            "/agents/echo/streamer", json={"message": "hi"}, headers={"Accept": "text/event-stream"}
        )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    messages = sse(reply.text)
    kinds = [m.get("event") for m in messages]
    assert kinds[0] == "operation_start"
    assert "operation_end" in kinds
    assert kinds[-1] == "result"
    assert messages[-1]["data"]["result"]["text"] == "success (no tool calls)"


def test_workflow_202_then_the_run_and_its_events(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        accepted = client.post("/workflows/hello", json={"name": "Ada"})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert accepted.json()["status"] == "running"
        assert accepted.headers["location"] == f"/runs/{run_id}"
        # following the stream waits for the end, whatever state the run is in now
        stream = client.get(f"/runs/{run_id}/stream")
        assert [m["event"] for m in sse(stream.text)][-1] == "run_end"
        record = client.get(f"/runs/{run_id}").json()
        assert record["status"] == "completed"
        assert record["result"] == {"greeting": "hello Ada"}
        events = client.get(f"/runs/{run_id}/events").json()
        assert [e["type"] for e in events["events"]] == ["run_start", "run_end"]
        assert events["next_after"] is None
        listed = client.get("/runs", params={"workflow": "hello", "limit": 100}).json()
        assert run_id in [r["run_id"] for r in listed["runs"]]


def test_workflow_wait_result_and_the_020_wrapper(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        done = client.post("/workflows/hello?wait=result", json={"payload": {"name": "Bo", "times": 2}})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert done.json()["result"] == {"greeting": "hello Bo hello Bo"}
    assert done.headers["location"].startswith("/runs/workflow:hello:")


def test_a_failed_run_is_a_record_not_a_500(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        done = client.post("/workflows/boom?wait=result")
        assert done.status_code == 200
        body = done.json()
        assert body["status"] == "failed"
        assert body["error"]["type"] == "ValueError"
        stream = client.get(f"/runs/{body['run_id']}/stream")
    last = sse(stream.text)[-1]
    assert last["event"] == "run_end" and last["data"]["data"]["status"] == "failed"


def test_workflow_streams_its_events(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        reply = client.post("/workflows/chatty", json={"count": 4}, headers={"Accept": "text/event-stream"})
    messages = [m for m in sse(reply.text) if "event" in m]
    assert [m["event"] for m in messages] == ["run_start", "log", "log", "log", "log", "run_end"]
    assert [int(m["id"]) for m in messages] == [1, 2, 3, 4, 5, 6]
    assert reply.headers["location"] == f"/runs/{messages[0]['data']['run_id']}"


def test_run_events_pages_and_filters(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        run = client.post("/workflows/chatty?wait=result", json={"count": 6}).json()
        url = f"/runs/{run['run_id']}/events"
        page = client.get(url, params={"limit": 3}).json()
        assert [e["seq"] for e in page["events"]] == [1, 2, 3]
        assert page["next_after"] == 3
        rest = client.get(url, params={"after": 3, "limit": 100}).json()
        assert [e["seq"] for e in rest["events"]] == [4, 5, 6, 7, 8]
        assert rest["next_after"] is None
        logs = client.get(url, params={"types": "log", "limit": 100}).json()
        assert {e["type"] for e in logs["events"]} == {"log"} and len(logs["events"]) == 6


def test_runs_pages_with_a_cursor(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        for name in ("p1", "p2", "p3"):
            client.post("/workflows/hello?wait=result", json={"name": name})
        first = client.get("/runs", params={"workflow": "hello", "limit": 2}).json()
        second = client.get(
            "/runs", params={"workflow": "hello", "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        failed = client.get("/runs", params={"status": "failed"}).json()
    ids = [r["run_id"] for r in first["runs"] + second["runs"]]
    assert len(first["runs"]) == len(second["runs"]) == 2
    assert len(set(ids)) == 4  # no run on two pages
    assert first["runs"][0]["started_at"] >= first["runs"][1]["started_at"]
    assert all(r["status"] == "failed" for r in failed["runs"])


def test_cancel_a_running_run(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        run_id = client.post("/workflows/stuck").json()["run_id"]
        cancelled = client.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["cancel_requested"] is True
        end = sse(client.get(f"/runs/{run_id}/stream").text)[-1]
        assert end["data"]["data"]["status"] == "cancelled"
        again = client.post(f"/runs/{run_id}/cancel").json()
    assert again == {"run_id": run_id, "cancel_requested": False, "status": "cancelled"}


def test_abort_is_false_on_an_idle_session(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        reply = client.post("/agents/echo/idle/abort", params={"session": "s"})
    assert reply.json() == {"aborted": False, "session": "s"}


def test_mounted_under_a_prefix(project: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    api = create_app(project, auth="s3cret")
    host = Starlette(routes=[Mount("/ai", app=api)], lifespan=api.lifespan)
    with serve(host) as url, httpx.Client(base_url=url) as client:
        assert client.get("/ai/health").status_code == 200
        token = {"Authorization": "Bearer s3cret"}
        assert client.get("/ai/agents").status_code == 401
        done = client.post("/ai/workflows/hello?wait=result", json={"name": "M"}, headers=token)
        assert done.status_code == 200
        assert done.headers["location"] == f"/ai/runs/{done.json()['run_id']}"
        missing = client.get("/ai/nowhere", headers=token)
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"


def test_mounted_without_its_lifespan_says_what_to_do(project: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    host = Starlette(routes=[Mount("/ai", app=create_app(project))])
    with serve(host) as url, httpx.Client(base_url=url) as client:
        reply = client.get("/ai/runs")
    assert reply.status_code == 503
    assert "lifespan" in reply.json()["error"]["message"]


@pytest.mark.parametrize("server", ["hypercorn"])
def test_hypercorn_smoke(project: Path, server: str) -> None:
    with (
        serve(create_app(project, poll_interval=0.02), server=server) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/health").json()["status"] == "ok"
        done = client.post("/workflows/hello?wait=result", json={"name": "H"}).json()
        assert done["result"] == {"greeting": "hello H"}
        streamed = client.post(
            "/workflows/chatty", json={"count": 2}, headers={"Accept": "text/event-stream"}
        )
        assert [m["event"] for m in sse(streamed.text) if "event" in m][-1] == "run_end"
        assert client.post("/agents/echo/h", json={"message": "x"}).json()["result"]["text"]
