"""Durable dispatch over HTTP on a real uvicorn: accept (202 + Location), the app's worker delivers,
the record and its event log are readable and streamable (resumable SSE), one queued item can be
cancelled, keys are idempotent, lists filter and page, errors are envelopes; schemathesis drives
the dispatch operations of /openapi.json."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue_asgi import create_app
from tests.asgi._live import FILES, serve, sse
from tests.asgi.test_openapi import CHECKS
from tests.core._workflow_helpers import write_project

DISPATCH_OPERATIONS = [
    ("POST", "/agents/{name}/{id}/dispatch"),
    ("GET", "/dispatches"),
    ("GET", "/dispatches/{dispatch_id}"),
    ("GET", "/dispatches/{dispatch_id}/events"),
    ("GET", "/dispatches/{dispatch_id}/stream"),
    ("POST", "/dispatches/{dispatch_id}/cancel"),
]


def _events(text: str) -> list[dict[str, Any]]:
    return [m for m in sse(text) if "event" in m]


def _wait_for(path: Path) -> None:
    """Until the server thread wrote ``path`` (the gate tool's signal); not a timing assertion."""
    while not path.exists():
        time.sleep(0.01)


def _accept(client: httpx.Client, target: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(f"/agents/{target}/dispatch", json=body)
    assert reply.status_code == 202, reply.text
    receipt: dict[str, Any] = reply.json()
    assert reply.headers["location"] == f"/dispatches/{receipt['dispatch_id']}"
    return receipt


def _finished(client: httpx.Client, dispatch_id: str) -> dict[str, Any]:
    """The record once the dispatch is finished: the stream closes only then."""
    client.get(f"/dispatches/{dispatch_id}/stream")
    record: dict[str, Any] = client.get(f"/dispatches/{dispatch_id}").json()
    return record


def test_dispatch_is_delivered_and_its_stream_shows_the_delivery(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url, timeout=60) as client:
        receipt = _accept(client, "echo/d1", {"input": "hello there", "session": "s1"})
        assert receipt["agent"] == "echo"
        assert (receipt["instance_id"], receipt["session_id"]) == ("d1", "s1")
        assert receipt["status"] in ("queued", "running", "delivered")
        dispatch_id = receipt["dispatch_id"]
        stream = client.get(f"/dispatches/{dispatch_id}/stream")
        assert stream.headers["content-type"].startswith("text/event-stream")
        messages = _events(stream.text)
        record = client.get(f"/dispatches/{dispatch_id}").json()
    kinds = [m["event"] for m in messages]
    assert kinds[0] == "dispatch_started"
    assert kinds[-1] == "dispatch_delivered"
    assert "operation_start" in kinds and "operation_end" in kinds
    assert [int(m["id"]) for m in messages] == list(range(1, len(messages) + 1))
    assert all(m["data"]["seq"] == int(m["id"]) for m in messages)
    assert messages[0]["data"]["data"]["dispatch_id"] == dispatch_id
    assert record["status"] == "delivered"
    assert record["attempts"] == 1
    assert record["input"] == "hello there"
    assert record["outcome"]["text"]
    assert record["outcome"]["operation_id"] == messages[-1]["data"]["data"]["operation_id"]


def test_stream_resumes_from_the_middle_and_events_page(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url, timeout=60) as client:
        dispatch_id = _accept(client, "echo/d2", {"input": [{"type": "text", "text": "parts"}]})[
            "dispatch_id"
        ]
        whole = _events(client.get(f"/dispatches/{dispatch_id}/stream").text)
        assert len(whole) > 4
        by_header = _events(
            client.get(f"/dispatches/{dispatch_id}/stream", headers={"Last-Event-ID": "3"}).text
        )
        by_query = _events(client.get(f"/dispatches/{dispatch_id}/stream", params={"after": 3}).text)
        past_end = _events(client.get(f"/dispatches/{dispatch_id}/stream", params={"after": 10_000}).text)
        pages: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = client.get(f"/dispatches/{dispatch_id}/events", params={"after": after, "limit": 3}).json()
            assert len(page["events"]) <= 3
            pages.extend(page["events"])
            after = page["next_after"]
    assert by_header == by_query == whole[3:]
    assert past_end == []
    assert [e["seq"] for e in pages] == [int(m["id"]) for m in whole]
    assert [e["type"] for e in pages] == [m["event"] for m in whole]


def test_cancel_a_queued_dispatch_leaves_its_neighbours_alone(project: Path) -> None:
    with serve(create_app(project, heartbeat=0.2)) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = _accept(client, "gated/g1", {"input": "first"})["dispatch_id"]
        _wait_for(project / "started-0")  # the first delivery is in its tool: the session is busy
        second = _accept(client, "gated/g1", {"input": "second"})["dispatch_id"]
        third = _accept(client, "gated/g1", {"input": "third"})["dispatch_id"]
        assert client.get(f"/dispatches/{second}").json()["status"] == "queued"
        cancelled = client.post(f"/dispatches/{second}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["cancel_requested"] == "cancelled over HTTP"
        (project / "release-0").write_text("")
        _wait_for(project / "started-1")  # the third is delivered next, never the second
        (project / "release-1").write_text("")
        records = {d: _finished(client, d) for d in (first, second, third)}
        again = client.post(f"/dispatches/{first}/cancel").json()
        second_events = _events(client.get(f"/dispatches/{second}/stream").text)
    assert [records[d]["status"] for d in (first, second, third)] == ["delivered", "cancelled", "delivered"]
    assert records[second]["attempts"] == 0
    assert second_events == []
    assert (project / "gate.log").read_text() == "end 0\nend 1\n"
    assert again["status"] == "delivered"  # cancelling a finished dispatch changes nothing


def test_a_key_is_idempotent_for_its_target_and_a_conflict_elsewhere(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url, timeout=60) as client:
        one = _accept(client, "echo/k1", {"input": "once", "key": "order-17"})
        two = _accept(client, "echo/k1", {"input": "once again", "key": "order-17"})
        listed = client.get("/dispatches", params={"id": "k1"}).json()["dispatches"]
        other = client.post("/agents/echo/k2/dispatch", json={"input": "x", "key": "order-17"})
        other_session = client.post(
            "/agents/echo/k1/dispatch", json={"input": "x", "key": "order-17", "session": "s2"}
        )
    assert one == {**two, "status": one["status"]}  # the first receipt (its status may have moved on)
    assert [d["dispatch_id"] for d in listed] == [one["dispatch_id"]]
    assert listed[0]["input"] == "once"
    for conflict in (other, other_session):
        assert conflict.status_code == 409
        assert conflict.json()["error"]["type"] == "KeyConflict"
        assert "order-17" in conflict.json()["error"]["message"]


def test_list_filters_and_pages(project: Path) -> None:
    with serve(create_app(project)) as url, httpx.Client(base_url=url, timeout=60) as client:
        accepted = [
            _accept(client, f"echo/{instance}", {"input": f"n{n}", "session": session})["dispatch_id"]
            for n, (instance, session) in enumerate(
                [("a", "s"), ("b", "s"), ("a", "t"), ("a", "s"), ("b", "t"), ("a", "s"), ("b", "s")]
            )
        ]
        for dispatch_id in accepted:
            _finished(client, dispatch_id)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = client.get("/dispatches", params=params).json()
            assert set(page) == {"dispatches", "next_cursor"}
            assert len(page["dispatches"]) <= 3
            seen.extend(d["dispatch_id"] for d in page["dispatches"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        by_id = client.get("/dispatches", params={"id": "a"}).json()["dispatches"]
        by_both = client.get("/dispatches", params={"id": "a", "session": "s"}).json()["dispatches"]
        by_agent = client.get("/dispatches", params={"agent": "echo", "status": "delivered"}).json()
        none_queued = client.get("/dispatches", params={"status": "queued"}).json()
        other_agent = client.get("/dispatches", params={"agent": "gated"}).json()
        bad_status = client.get("/dispatches", params={"status": "lost"})
        bad_cursor = client.get("/dispatches", params={"cursor": "not-ours"})
        bad_limit = client.get("/dispatches", params={"limit": 0})
    assert seen == accepted[::-1]  # newest first, each once
    assert [d["dispatch_id"] for d in by_id] == [accepted[i] for i in (5, 3, 2, 0)]
    assert [d["dispatch_id"] for d in by_both] == [accepted[i] for i in (5, 3, 0)]
    assert len(by_agent["dispatches"]) == 7
    assert none_queued == {"dispatches": [], "next_cursor": None}
    assert other_agent == {"dispatches": [], "next_cursor": None}
    for reply, where in (
        (bad_status, "query.status"),
        (bad_cursor, "query.cursor"),
        (bad_limit, "query.limit"),
    ):
        assert reply.status_code == 422
        assert reply.json()["error"]["details"][0]["path"] == where


def test_bad_requests_are_envelopes(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url, timeout=60) as client:
        unknown_agent = client.post("/agents/nobody/x/dispatch", json={"input": "hi"})
        bad_name = client.post("/agents/Bad.Name/x/dispatch", json={"input": "hi"})
        empty = client.post("/agents/echo/x/dispatch", json={"input": "   "})
        no_parts = client.post("/agents/echo/x/dispatch", json={"input": []})
        bad_part = client.post("/agents/echo/x/dispatch", json={"input": [{"type": "video"}]})
        missing = client.post("/agents/echo/x/dispatch", json={"session": "s"})
        extra = client.post("/agents/echo/x/dispatch", json={"input": "hi", "priority": 1})
        no_body = client.post("/agents/echo/x/dispatch")
        bad_json = client.post(
            "/agents/echo/x/dispatch", content=b"{", headers={"content-type": "application/json"}
        )
        not_json = client.post(
            "/agents/echo/x/dispatch", content=b"hi", headers={"content-type": "text/plain"}
        )
        unknown = [
            client.get("/dispatches/dispatch:nothing"),
            client.get("/dispatches/dispatch:nothing/events"),
            client.get("/dispatches/dispatch:nothing/stream"),
            client.post("/dispatches/dispatch:nothing/cancel"),
        ]
        listed = client.get("/dispatches", params={"agent": "nobody"}).json()
    assert unknown_agent.status_code == 404
    message = unknown_agent.json()["error"]["message"]
    assert "nobody" in message and "echo" in message and "gated" in message
    assert bad_name.status_code == 422
    for reply in (empty, no_parts, bad_part, missing, extra):
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["type"] == "ValidationError"
    assert empty.json()["error"]["details"][0]["path"] == "body.input"
    assert no_body.status_code == 422
    assert bad_json.status_code == 400
    assert not_json.status_code == 415
    for reply in unknown:
        assert reply.status_code == 404
        assert reply.json()["error"] == {"type": "NotFoundError", "message": "no dispatch 'dispatch:nothing'"}
    assert listed["dispatches"] == []  # nothing was enqueued by the refused requests


def test_routes_need_the_token(project: Path) -> None:
    with serve(create_app(project, auth="s3cret")) as url, httpx.Client(base_url=url, timeout=60) as client:
        refused = [
            client.get("/dispatches"),
            client.post("/agents/echo/x/dispatch", json={"input": "hi"}),
        ]
        listed = client.get("/dispatches", headers={"Authorization": "Bearer s3cret"})
    for reply in refused:
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert listed.json() == {"dispatches": [], "next_cursor": None}  # the refused dispatch was not kept


def test_shutdown_stops_the_worker_without_losing_a_delivery(project: Path) -> None:
    """The lifespan stops its worker: a delivery still running after the grace period is cancelled,
    and its item stays claimed until its lease expires, for a worker to deliver again (as after a
    crash); it is neither lost nor marked finished."""
    with (
        serve(create_app(project, grace_period=0.2)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        first = _accept(client, "gated/w1", {"input": "held"})["dispatch_id"]
        _wait_for(project / "started-0")
        held = _accept(client, "gated/w1", {"input": "later"})["dispatch_id"]
        (project / "release-0").write_text("")
        assert _finished(client, first)["status"] == "delivered"
        _wait_for(project / "started-1")
        while not client.get(f"/dispatches/{held}/events").json()["events"]:  # flushed to the store
            time.sleep(0.01)
    with (
        serve(create_app(project, grace_period=0.2)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        record = client.get(f"/dispatches/{held}").json()
        events = client.get(f"/dispatches/{held}/events").json()["events"]
    assert record["status"] == "running"
    assert record["attempts"] == 1
    assert record["outcome"] is None
    assert record["lease_expires"] is not None
    assert [e["type"] for e in events][:1] == ["dispatch_started"]
    assert "dispatch_delivered" not in [e["type"] for e in events]
    assert (project / "gate.log").read_text() == "end 0\n"  # the held tool never finished


# -- the OpenAPI document describes these routes -----------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = write_project(tmp_path_factory.mktemp("fuzz"), {"agents/echo.py": FILES["agents/echo.py"]})
    with serve(create_app(root, heartbeat=0.2, auth="t0ken")) as url:
        yield url


def test_the_document_has_the_dispatch_routes(fuzz_url: str) -> None:
    document = httpx.get(fuzz_url + "/openapi.json", headers={"Authorization": "Bearer t0ken"}).json()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert set(DISPATCH_OPERATIONS) <= operations
    accept = document["paths"]["/agents/{name}/{id}/dispatch"]["post"]
    assert set(accept["responses"]) >= {"202", "404", "409", "422"}
    assert "Location" in accept["responses"]["202"]["headers"]
    stream = document["paths"]["/dispatches/{dispatch_id}/stream"]["get"]
    assert set(stream["responses"]["200"]["content"]) == {"text/event-stream"}


@pytest.mark.parametrize(("method", "path"), DISPATCH_OPERATIONS)
def test_generated_requests(fuzz_url: str, method: str, path: str) -> None:
    document = httpx.get(fuzz_url + "/openapi.json", headers={"Authorization": "Bearer t0ken"}).json()
    operation = schemathesis.openapi.from_dict(document)[path][method]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    @given(case=st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes)))
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=fuzz_url, headers={"Authorization": "Bearer t0ken"}, checks=CHECKS)

    check()
