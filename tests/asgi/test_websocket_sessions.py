"""Requests in flight on one socket: concurrent prompts and runs told apart by request_id, turns on
one session, multitask, abort, and clients that disconnect mid-prompt or mid-run. The `gated`
agent's tool holds each operation until the test writes its `release-k` file; `chatty` with
`wait` holds its run until `release-run`."""

from __future__ import annotations

from pathlib import Path

import httpx

from pyflue_asgi import create_app
from pyflue_asgi.ws import WebSocketOptions
from tests.asgi._live import serve
from tests.asgi._ws import client, make_ws_project, recording, release, serve_on_trio, started, wait_for


def test_concurrent_prompts_take_turns_per_session_and_a_run_goes_alongside(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    with serve(create_app(project)) as url:
        with client(url, "/agents/gated/g1") as agent, client(url, "/workflows/chatty") as flows:
            agent.recv(), flows.recv()
            agent.send({"type": "prompt", "request_id": "a", "message": "one", "session": "s1"})
            started(project, 0)  # (the gate numbers calls as they start: one at a time)
            agent.send({"type": "prompt", "request_id": "b", "message": "two", "session": "s2"})
            started(project, 1)  # both in their tool at once: they run concurrently
            agent.send({"type": "prompt", "request_id": "c", "message": "three", "session": "s1"})
            flows.send({"type": "invoke", "request_id": "w", "payload": {"wait": True, "count": 4}})
            flows.send({"type": "invoke", "request_id": "h", "payload": {"count": 2}})
            run_h = flows.until_done("h")["h"]  # completes while w still waits
            assert run_h[-1]["result"]["status"] == "completed"
            release(project, 0)
            release(project, 1)
            started(project, 2)  # c took its turn after a
            release(project, 2)
            done = agent.until_done("a", "b", "c")
            (project / "release-run").write_text("")
            run_w = flows.until_done("w")["w"]
    for request_id, session in (("a", "s1"), ("b", "s2"), ("c", "s1")):
        first, *events, last = done[request_id]
        assert first["type"] == "started" and last["type"] == "result"
        assert {m["event"]["session_id"] for m in events} == {session}
        assert {m["event"]["operation_id"] for m in events if m["event"]["parent_id"] is None} == {
            first["operation_id"]
        }
    order = [(m["type"], m.get("request_id")) for m in agent.seen]
    assert order.index(("started", "c")) > order.index(("result", "a"))  # one session, one turn at a time
    assert run_w[-1]["result"]["status"] == "completed"
    assert run_w[-1]["result"]["result"] == {"count": 4}
    logs = [m["event"] for m in run_w if m["type"] == "event" and m["event"]["type"] == "log"]
    assert [e["data"]["fields"]["i"] for e in logs] == [0, 1, 2, 3]


def test_multitask_reject_and_interrupt(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    with serve(create_app(project)) as url, client(url, "/agents/gated/g2") as ws:
        ws.recv()
        ws.send({"type": "prompt", "request_id": "first", "message": "one"})
        started(project, 0)
        ws.send({"type": "prompt", "request_id": "no", "message": "two", "multitask": "reject"})
        (refused,) = ws.until_done("no")["no"]
        assert refused["error"]["type"] == "SessionBusy"
        # HTTP and WebSocket prompts share the turn: over HTTP the session is busy too
        busy = httpx.post(f"{url}/agents/gated/g2?multitask=reject", json={"message": "x"})
        assert busy.status_code == 409
        ws.send({"type": "prompt", "request_id": "now", "message": "three", "multitask": "interrupt"})
        started(project, 1)
        release(project, 1)
        done = ws.until_done("first", "now")
    assert done["first"][-1]["error"]["type"] == "AbortedError"
    assert done["now"][-1]["type"] == "result"


def test_abort_a_running_prompt_a_queued_one_and_a_run(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    with serve(create_app(project)) as url:
        with client(url, "/agents/gated/g3") as ws:
            ws.recv()
            ws.send({"type": "prompt", "request_id": "run", "message": "one"})
            ws.send({"type": "prompt", "request_id": "queued", "message": "two"})
            started(project, 0)
            ws.send({"type": "abort", "request_id": "queued", "version": 1})
            (gone,) = ws.until_done("queued")["queued"]  # it never started
            assert gone["error"]["type"] == "AbortedError"
            ws.send({"type": "abort", "request_id": "run"})
            aborted = ws.until_done("run")["run"]
            ws.send({"type": "abort", "request_id": "run"})  # over: nothing to abort
            assert ws.recv()["error"]["type"] == "UnknownRequest"
        kinds = [m["event"]["type"] for m in aborted if m["type"] == "event"]
        assert "abort" in kinds
        end = next(m["event"] for m in aborted if m.get("event", {}).get("type") == "operation_end")
        assert end["data"]["status"] == "aborted"
        assert aborted[-1]["error"]["type"] == "AbortedError"
        assert not (project / "started-1").exists()  # the queued prompt never ran

        with client(url, "/workflows/stuck") as ws:
            ws.recv()
            ws.send({"type": "invoke", "request_id": "s"})
            run_id = ws.next_of("s", "started")["run_id"]
            ws.send({"type": "abort", "request_id": "s"})
            result = ws.next_of("s", "result")["result"]
        assert (result["run_id"], result["status"]) == (run_id, "cancelled")
        assert httpx.get(f"{url}/runs/{run_id}").json()["status"] == "cancelled"


def test_disconnect_mid_prompt_aborts_it(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    with recording() as recorder, serve(create_app(project)) as url:
        with client(url, "/agents/gated/g4") as ws:
            ws.recv()
            ws.send({"type": "prompt", "request_id": "p", "message": "hello", "session": "s"})
            operation = ws.next_of("p", "started")["operation_id"]
            started(project, 0)
        end = recorder.wait(
            lambda e: e.type == "operation_end" and e.operation_id == operation, "the operation to end"
        )
        assert end.data["status"] == "aborted"
        (abort,) = recorder.find(lambda e: e.type == "abort" and e.operation_id == operation)
        assert abort.data["reason"] == "the client disconnected"
        assert not (project / "gate.log").exists()  # the tool never finished
        with client(url, "/agents/gated/g4") as ws:  # the session takes the next prompt
            ws.recv()
            ws.send({"type": "prompt", "request_id": "q", "message": "again", "session": "s"})
            started(project, 1)
            release(project, 1)
            assert ws.until_done("q")["q"][-1]["type"] == "result"


def test_disconnect_mid_prompt_can_leave_it_running(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    options = WebSocketOptions(abort_on_disconnect=False)
    with recording() as recorder, serve(create_app(project, websocket=options)) as url:
        with client(url, "/agents/gated/g5") as ws:
            ws.recv()
            ws.send({"type": "prompt", "request_id": "p", "message": "hello"})
            operation = ws.next_of("p", "started")["operation_id"]
            started(project, 0)
        release(project, 0)
        end = recorder.wait(
            lambda e: e.type == "operation_end" and e.operation_id == operation, "the operation to end"
        )
    assert end.data["status"] == "completed"
    assert (project / "gate.log").read_text() == "end 0\n"


def test_disconnect_mid_run_leaves_the_run_running(tmp_path: Path) -> None:
    project = make_ws_project(tmp_path / "p")
    with serve(create_app(project, poll_interval=0.02)) as url:
        with client(url, "/workflows/chatty") as ws:
            ws.recv()
            ws.send({"type": "invoke", "request_id": "r", "payload": {"wait": True, "count": 6}})
            run_id = ws.next_of("r", "started")["run_id"]
            assert ws.next_of("r", "event")["event"]["type"] == "run_start"
        (project / "release-run").write_text("")

        def finished() -> bool:
            return httpx.get(f"{url}/runs/{run_id}").json()["status"] != "running"

        wait_for(finished, "the run to end")
        record = httpx.get(f"{url}/runs/{run_id}").json()
        events = httpx.get(f"{url}/runs/{run_id}/events", params={"types": "log"}).json()["events"]
    assert (record["status"], record["result"]) == ("completed", {"count": 6})
    assert [e["data"]["fields"]["i"] for e in events] == list(range(6))


def test_the_protocol_on_trio(tmp_path: Path) -> None:
    """The same endpoints served by hypercorn on trio: prompts, a run, abort on disconnect."""
    project = make_ws_project(tmp_path / "p")
    with recording() as recorder, serve_on_trio(create_app(project, poll_interval=0.02)) as url:
        with client(url, "/agents/echo/t1") as ws:
            assert ws.recv()["type"] == "ready"
            ws.send({"type": "prompt", "request_id": "a", "message": "hi"})
            ws.send({"type": "prompt", "request_id": "b", "message": "ho", "session": "other"})
            ws.send({"type": "ping"})
            done = ws.until_done("a", "b")
            assert {"type": "pong"} in ws.seen
        assert [done[r][-1]["type"] for r in "ab"] == ["result", "result"]
        with client(url, "/workflows/hello") as ws:
            ws.recv()
            ws.send({"type": "invoke", "request_id": "r", "payload": {"name": "Tri"}})
            result = ws.until_done("r")["r"][-1]["result"]
        assert result["result"] == {"greeting": "hello Tri"}
        with client(url, "/agents/gated/t2") as ws:
            ws.recv()
            ws.send({"type": "prompt", "request_id": "p", "message": "hello"})
            operation = ws.next_of("p", "started")["operation_id"]
            started(project, 0)
        end = recorder.wait(
            lambda e: e.type == "operation_end" and e.operation_id == operation, "the operation to end"
        )
    assert end.data["status"] == "aborted"
