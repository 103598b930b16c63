"""The WebSocket protocol on a real uvicorn, with a real client (``websockets``): every message
type and every error, auth, the frame limit, a client too slow to keep up, and arbitrary frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.exceptions import InvalidStatus

from pyflue_asgi import create_app
from pyflue_asgi.ws import WebSocketOptions
from tests.asgi._live import serve
from tests.asgi._ws import Client, StalledClient, client, make_ws_project, recording

EVENT_KEYS = {
    "type",
    "event_id",
    "ts",
    "seq",
    "run_id",
    "agent",
    "instance_id",
    "session_id",
    "operation_id",
    "parent_id",
    "data",
}


@pytest.fixture(scope="module")
def ws_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ws_project(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="module")
def url(ws_project: Path) -> Iterator[str]:
    options = WebSocketOptions(max_message=4096)
    with serve(create_app(ws_project, poll_interval=0.02, websocket=options)) as url:
        yield url


def test_agent_socket_ready_ping_prompt_result(url: str) -> None:
    with client(url, "/agents/echo/i1") as ws:
        assert ws.recv() == {"type": "ready", "target": "agent", "name": "echo", "instance_id": "i1"}
        ws.send({"type": "ping", "version": 1})
        assert ws.recv() == {"type": "pong"}
        ws.send({"type": "prompt", "request_id": "p1", "message": "hello", "session": "s1", "version": 1})
        messages = ws.until_done("p1")["p1"]
    started, *events, result = messages
    assert started["type"] == "started" and set(started) == {"type", "request_id", "operation_id"}
    assert [m["type"] for m in events] == ["event"] * len(events)
    kinds = [m["event"]["type"] for m in events]
    assert kinds[0] == "operation_start" and kinds[-1] == "operation_end" and "text_delta" in kinds
    for message in events:
        event = message["event"]
        assert set(event) == EVENT_KEYS
        assert (event["agent"], event["instance_id"], event["session_id"]) == ("echo", "i1", "s1")
        assert event["operation_id"] == started["operation_id"]
    deltas = "".join(m["event"]["data"]["text"] for m in events if m["event"]["type"] == "text_delta")
    assert result["type"] == "result" and result["request_id"] == "p1"
    body = result["result"]
    assert body["text"] == deltas and body["operation_id"] == started["operation_id"]
    assert body["model"] == "test/test" and body["finish_reason"] == "stop"
    assert body["usage"]["requests"] == 1


def test_the_conversation_is_the_http_one(url: str) -> None:
    with client(url, "/agents/echo/shared") as ws:
        ws.recv()
        ws.send({"type": "prompt", "request_id": "a", "message": "first words", "session": "talk"})
        ws.until_done("a")
    reply = httpx.post(f"{url}/agents/echo/shared", json={"message": "second", "session": "talk"}, timeout=60)
    assert reply.status_code == 200
    with client(url, "/agents/echo/shared") as ws:
        ws.recv()
        ws.send({"type": "prompt", "request_id": "b", "message": "third", "session": "talk"})
        result = ws.until_done("b")["b"][-1]
    assert result["type"] == "result"
    start = next(m for m in ws.seen if m.get("event", {}).get("type") == "model_start")
    assert start["event"]["data"]["model"] == "test"


def test_workflow_socket_runs_and_results(url: str) -> None:
    with client(url, "/workflows/hello") as ws:
        assert ws.recv() == {"type": "ready", "target": "workflow", "name": "hello"}
        ws.send({"type": "invoke", "request_id": "r1", "payload": {"name": "Ada", "times": 2}})
        started, *events, result = ws.until_done("r1")["r1"]
        assert started["type"] == "started" and set(started) == {"type", "request_id", "run_id"}
        run_id = started["run_id"]
        assert [m["event"]["type"] for m in events] == ["run_start", "run_end"]
        assert [m["event"]["seq"] for m in events] == [1, 2]
        assert all(m["event"]["run_id"] == run_id for m in events)
        record = result["result"]
        assert (record["run_id"], record["status"]) == (run_id, "completed")
        assert record["result"] == {"greeting": "hello Ada hello Ada"}
        assert httpx.get(f"{url}/runs/{run_id}").json() == record

        ws.send({"type": "invoke", "request_id": "bad", "payload": {"nom": "Ada"}})
        (error,) = ws.until_done("bad")["bad"]
        assert error["error"]["type"] == "PayloadValidationError"
        ws.send({"type": "ping"})
        assert ws.recv() == {"type": "pong"}

    with client(url, "/workflows/boom") as ws:
        ws.recv()
        ws.send({"type": "invoke", "request_id": "b1"})
        result = ws.until_done("b1")["b1"][-1]
    assert result["type"] == "result"
    assert result["result"]["status"] == "failed"
    assert result["result"]["error"]["type"] == "ValueError"
    assert "traceback" not in result["result"]["error"]
    run_end = next(m["event"] for m in ws.seen if m.get("event", {}).get("type") == "run_end")
    assert "traceback" not in run_end["data"]["error"]


@pytest.mark.parametrize(
    ("frame", "kind", "named"),
    [
        ("not json", "InvalidJSON", None),
        (b"\xff\xfe", "InvalidJSON", None),
        ("NaN", "InvalidJSON", None),
        ("[1, 2]", "ValidationError", None),
        ('"ping"', "ValidationError", None),
        ("{}", "UnknownType", None),
        ('{"type": "shout", "request_id": "x"}', "UnknownType", "x"),
        ('{"type": "invoke", "request_id": "x", "payload": 1}', "UnknownType", "x"),
        ('{"type": "prompt", "request_id": "x"}', "ValidationError", "x"),
        ('{"type": "prompt", "request_id": "", "message": "m"}', "ValidationError", None),
        ('{"type": "prompt", "request_id": "x", "message": "m", "sesion": "s"}', "ValidationError", "x"),
        (
            '{"type": "prompt", "request_id": "x", "message": "m", "multitask": "never"}',
            "ValidationError",
            "x",
        ),
        (
            '{"type": "prompt", "request_id": "x", "message": "m", "session": "a\\u0000b"}',
            "ValidationError",
            "x",
        ),
        ('{"type": "ping", "version": 2}', "ValidationError", None),
        ('{"type": "abort", "request_id": "nobody"}', "UnknownRequest", "nobody"),
        (b'{"type": "abort", "request_id": 7}', "ValidationError", None),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays_open(
    url: str, frame: str | bytes, kind: str, named: str | None
) -> None:
    with client(url, "/agents/echo/errors") as ws:
        ws.recv()
        ws.send_raw(frame)
        error = ws.recv()
        assert error["type"] == "error" and error["error"]["type"] == kind
        assert error.get("request_id") == named
        assert 0 < len(error["error"]["message"]) <= 300
        ws.send({"type": "ping"})
        assert ws.recv() == {"type": "pong"}


def test_validation_errors_name_the_fields(url: str) -> None:
    with client(url, "/agents/echo/errors") as ws:
        ws.recv()
        ws.send({"type": "prompt", "request_id": "x", "message": 3, "session": ""})
        error = ws.recv()["error"]
    paths = {d["path"] for d in error["details"]}
    assert {"session"} <= paths and any(p.startswith("message") for p in paths)


def test_prompt_on_a_workflow_socket_is_an_unknown_type(url: str) -> None:
    with client(url, "/workflows/hello") as ws:
        ws.recv()
        ws.send({"type": "prompt", "request_id": "x", "message": "m"})
        error = ws.recv()
        assert error["error"]["type"] == "UnknownType"
        assert "agent sockets" in error["error"]["message"]


def test_duplicate_request_id_in_flight(url: str, ws_project: Path) -> None:
    with client(url, "/workflows/chatty") as ws:
        ws.recv()
        ws.send({"type": "invoke", "request_id": "same", "payload": {"wait": True, "count": 2}})
        started = ws.next_of("same", "started")
        ws.send({"type": "invoke", "request_id": "same", "payload": {}})
        error = ws.recv()
        while error["type"] != "error":  # the first run's events may come first
            error = ws.recv()
        assert "request_id" not in error  # that id's messages are the running request's
        assert error["error"]["type"] == "DuplicateRequest"
        assert error["error"]["details"] == {"request_id": "same"}
        (ws_project / "release-run").write_text("")
        result = ws.next_of("same", "result")
        assert result["result"]["run_id"] == started["run_id"]
        # once it is done, the id may be used again
        ws.send({"type": "invoke", "request_id": "same", "payload": {"count": 2}})
        assert ws.next_of("same", "result")["result"]["status"] == "completed"


@pytest.mark.parametrize(
    ("path", "code", "kind"),
    [
        ("/agents/nobody/i1", 4404, "UnknownAgentError"),
        ("/agents/Not%20A%20Name/i1", 4404, "UnknownAgentError"),
        ("/workflows/nothing", 4404, "UnknownAgentError"),
        ("/agents/echo/" + "i" * 300, 4422, "ValidationError"),
    ],
)
def test_unknown_targets_get_an_error_then_a_close(url: str, path: str, code: int, kind: str) -> None:
    with client(url, path) as ws:
        error = ws.recv()
        assert error["type"] == "error" and error["error"]["type"] == kind
        assert "request_id" not in error
        assert ws.closed() == code


def test_unknown_agent_names_what_exists(url: str) -> None:
    with client(url, "/agents/nobody/i1") as ws:
        assert "available: echo, flood, gated" in ws.recv()["error"]["message"]


def test_oversized_frame_closes_with_1009(url: str) -> None:
    with client(url, "/agents/echo/big") as ws:
        ws.recv()
        at_limit = json.dumps(
            {"type": "ping", "pad": "x" * (4096 - len(json.dumps({"type": "ping", "pad": ""})))}
        )
        assert len(at_limit) == 4096
        ws.send_raw(at_limit)  # at the limit: read (and refused for its extra field)
        assert ws.recv()["error"]["type"] == "ValidationError"
        ws.send_raw("x" * 4097)
        assert ws.closed() == 1009
    with client(url, "/agents/echo/big") as ws:
        ws.recv()
        ws.send_raw("é" * 2049)  # 2 049 characters, 4 098 bytes
        assert ws.closed() == 1009


def test_slow_reader_is_closed_with_1013(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    options = WebSocketOptions(send_buffer=8)
    with recording() as recorder, serve(create_app(project, websocket=options)) as url:
        ws = StalledClient(url, "/agents/flood/f1")
        ws.send({"type": "prompt", "request_id": "f", "message": "go"})
        end = recorder.wait(lambda e: e.type == "operation_end" and e.agent == "flood", "the prompt to end")
        messages, code = ws.messages_then_close()
    assert code == 1013
    assert messages[0]["type"] == "ready" and messages[1]["type"] == "started"
    assert not any(m["type"] == "result" for m in messages)
    assert end.data["status"] == "aborted"  # a client closed for being slow is gone: its prompt is aborted
    (abort,) = recorder.find(lambda e: e.type == "abort" and e.agent == "flood")
    assert abort.data["reason"] == "the client disconnected"


@pytest.fixture(scope="module")
def auth_url(ws_project: Path) -> Iterator[str]:
    with serve(create_app(ws_project, auth="s3cret")) as url:
        yield url


@pytest.mark.parametrize(
    ("query", "headers", "allowed"),
    [
        ("", {"Authorization": "Bearer s3cret"}, True),
        ("?token=s3cret", {}, True),
        ("?x=1&token=s3cret", {}, True),
        ("?token=wrong", {}, False),
        ("", {"Authorization": "Bearer wrong"}, False),
        ("?token=", {}, False),
        ("", {}, False),
        ("?token=s3cret", {"Authorization": "Bearer wrong"}, False),  # the header decides
    ],
)
def test_auth(auth_url: str, query: str, headers: dict[str, str], allowed: bool) -> None:
    with client(auth_url, "/agents/echo/a1" + query, additional_headers=headers) as ws:
        if allowed:
            assert ws.recv()["type"] == "ready"
            ws.send({"type": "ping"})
            assert ws.recv() == {"type": "pong"}
        else:
            assert ws.closed() == 4401
            assert ws.seen == []  # closed before ready


def test_auth_leaves_http_as_it_was(auth_url: str) -> None:
    assert httpx.get(f"{auth_url}/agents?token=s3cret").status_code == 401
    assert httpx.get(f"{auth_url}/agents", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_path_without_a_socket_is_refused(url: str) -> None:
    with pytest.raises(InvalidStatus):
        with client(url, "/runs"):
            pass


# -- arbitrary frames ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_socket(url: str) -> Iterator[Client]:
    """One socket for every example: it must keep working after each of them."""
    with client(url, "/agents/echo/fuzz") as ws:
        assert ws.recv()["type"] == "ready"
        yield ws


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_fields = st.fixed_dictionaries(
    {"type": st.sampled_from(["prompt", "invoke", "abort", "ping", "pong", "ready", "", "PROMPT"])},
    optional={
        "request_id": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "message": _json,
        "session": _json,
        "multitask": st.one_of(st.sampled_from(["enqueue", "reject", "interrupt", "x"]), _json),
        "version": st.one_of(st.just(1), _json),
        "payload": _json,
    },
)


def _answers_without_error(frame: Any) -> bool:
    """Frames that are well-formed requests (a prompt starts work; a ping answers pong)."""
    if not isinstance(frame, dict) or frame.get("version", 1) != 1:
        return False
    kind = frame.get("type")
    if kind == "ping":
        return set(frame) <= {"type", "version"}
    return kind == "prompt" and isinstance(frame.get("request_id"), str) and "message" in frame


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=st.one_of(
        _json.map(json.dumps),
        _fields.filter(lambda f: not _answers_without_error(f)).map(json.dumps),
        st.text(max_size=60),
        st.binary(max_size=60),
    )
)
def test_arbitrary_frames_get_an_error_and_the_socket_keeps_working(
    fuzz_socket: Client, frame: str | bytes
) -> None:
    ws = fuzz_socket
    try:
        parsed = json.loads(frame)
    except ValueError:
        parsed = None
    if _answers_without_error(parsed):
        return
    ws.send_raw(frame)
    error = ws.recv()
    assert error["type"] == "error"
    assert set(error["error"]) <= {"type", "message", "details"}
    assert error["error"]["type"] in {
        "InvalidJSON",
        "ValidationError",
        "UnknownType",
        "UnknownRequest",
        "DuplicateRequest",
    }
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


def test_mounted_under_a_prefix(ws_project: Path) -> None:
    api = create_app(ws_project)
    with serve(Starlette(routes=[Mount("/ai", app=api)], lifespan=api.lifespan)) as url:
        with client(url, "/ai/agents/echo/m1") as ws:
            assert ws.recv()["type"] == "ready"
            ws.send({"type": "prompt", "request_id": "p", "message": "hi"})
            assert ws.until_done("p")["p"][-1]["type"] == "result"


def test_mounted_without_its_lifespan_says_so(ws_project: Path) -> None:
    with serve(Starlette(routes=[Mount("/ai", app=create_app(ws_project))])) as url:
        with client(url, "/ai/workflows/hello") as ws:
            error = ws.recv()
            assert error["error"]["type"] == "ServiceUnavailable"
            assert "lifespan" in error["error"]["message"]
            assert ws.closed() == 4503
