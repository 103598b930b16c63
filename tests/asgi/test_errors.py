"""Every error is the envelope ``{"error": {"type", "message", "details"?}}`` with a fitting status,
framework 404/405 included, and internal exception text never reaches a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue_asgi import create_app
from tests.asgi._live import serve, sse


def _error(reply: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == kind
    assert isinstance(body["error"]["message"], str) and 0 < len(body["error"]["message"]) <= 600
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind"),
    [
        ("GET", "/nowhere", {}, 404, "NotFound"),
        ("DELETE", "/agents", {}, 405, "MethodNotAllowed"),
        ("GET", "/workflows/hello", {}, 405, "MethodNotAllowed"),
        ("POST", "/agents/nobody/1", {"json": {"message": "x"}}, 404, "UnknownAgentError"),
        ("POST", "/workflows/nothing", {}, 404, "UnknownAgentError"),
        ("GET", "/runs/workflow:hello:nope", {}, 404, "NotFoundError"),
        ("GET", "/runs/nope/events", {}, 404, "NotFoundError"),
        ("GET", "/runs/nope/stream", {}, 404, "NotFoundError"),
        ("POST", "/runs/nope/cancel", {}, 404, "NotFoundError"),
        ("POST", "/agents/Bad.Name/1", {"json": {"message": "x"}}, 422, "ValidationError"),
        ("POST", "/workflows/_hidden", {}, 422, "ValidationError"),
        (
            "POST",
            "/agents/echo/1",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "InvalidJSON",
        ),
        (
            "POST",
            "/agents/echo/1",
            {"content": b"message=hi", "headers": {"content-type": "text/plain"}},
            415,
            "UnsupportedMediaType",
        ),
        ("POST", "/agents/echo/1", {"json": {"session": "s"}}, 422, "ValidationError"),
        ("POST", "/agents/echo/1", {"json": {"message": "x", "extra": 1}}, 422, "ValidationError"),
        ("POST", "/agents/echo/1", {}, 422, "ValidationError"),
        ("POST", "/agents/echo/1?multitask=sometimes", {"json": {"message": "x"}}, 422, "ValidationError"),
        ("POST", "/workflows/hello", {"json": {"times": 2}}, 422, "PayloadValidationError"),
        ("POST", "/workflows/hello?wait=forever", {"json": {"name": "a"}}, 422, "ValidationError"),
        ("GET", "/runs?status=sleeping", {}, 422, "ValidationError"),
        ("GET", "/runs?limit=0", {}, 422, "ValidationError"),
        ("GET", "/runs?cursor=garbage", {}, 422, "ValidationError"),
        ("GET", "/runs/x/events?after=-1", {}, 422, "ValidationError"),
    ],
)
def test_error_envelope(
    shared_url: str, method: str, path: str, kwargs: dict[str, object], status: int, kind: str
) -> None:
    with httpx.Client(base_url=shared_url) as client:
        _error(client.request(method, path, **kwargs), status, kind)  # type: ignore[arg-type]


def test_unknown_names_list_what_exists(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        agent = _error(client.post("/agents/nobody/1", json={"message": "x"}), 404, "UnknownAgentError")
        flow = _error(client.post("/workflows/nothing"), 404, "UnknownAgentError")
    assert "echo, gated" in str(agent["message"])
    assert "boom, chatty, hello, stuck" in str(flow["message"])


def test_validation_errors_have_field_paths(shared_url: str) -> None:
    with httpx.Client(base_url=shared_url) as client:
        error = _error(
            client.post("/agents/echo/1", json={"message": 5, "session": ""}), 422, "ValidationError"
        )
    paths = {d["path"] for d in error["details"]}  # type: ignore[attr-defined]
    assert "body.session" in paths
    assert any(p.startswith("body.message") for p in paths)


def test_a_body_over_the_limit_is_413(project: Path) -> None:
    with serve(create_app(project, max_body=64)) as url, httpx.Client(base_url=url) as client:
        _error(client.post("/agents/echo/1", json={"message": "x" * 100}), 413, "RequestTooLarge")
        streamed = client.post(
            "/agents/echo/1", content=_chunked(b"x" * 200), headers={"content-type": "application/json"}
        )
        _error(streamed, 413, "RequestTooLarge")  # chunked: no Content-Length to refuse it early


def _chunked(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 16):
        yield data[i : i + 16]


def test_internal_errors_hide_their_text_unless_debug(project: Path) -> None:
    (project / "agents" / "broken.py").write_text(
        "from pyflue import create_agent\n"
        "from pyflue.models.testing import FunctionModel\n"
        "def explode(request):\n"
        "    raise RuntimeError('secret internal detail')\n"
        "default = create_agent(lambda ctx: {'model': FunctionModel(explode)})\n"
    )
    for debug in (False, True):
        with serve(create_app(project, debug=debug)) as url, httpx.Client(base_url=url) as client:
            reply = client.post("/agents/broken/1", json={"message": "x"})
            assert reply.status_code == 500
            error = reply.json()["error"]
            assert ("secret internal detail" in error["message"]) is debug
            if not debug:
                assert error["type"] == "InternalError"
                assert "server log" in error["message"]
            sse_reply = client.post(
                "/agents/broken/2", json={"message": "x"}, headers={"Accept": "text/event-stream"}
            )
            last = sse(sse_reply.text)[-1]
            assert last["event"] == "error"
            assert ("secret internal detail" in last["data"]["error"]["message"]) is debug
            # a failed run's record keeps its typed error; its traceback only with debug
            run = client.post("/workflows/boom?wait=result").json()
            assert run["error"]["message"] == "secret internal detail"
            assert ("traceback" in run["error"]) is debug
            end = client.get(f"/runs/{run['run_id']}/events", params={"types": "run_end"}).json()
            assert ("traceback" in end["events"][0]["data"]["error"]) is debug
            streamed = sse(client.get(f"/runs/{run['run_id']}/stream").text)[-1]
            assert ("traceback" in streamed["data"]["data"]["error"]) is debug


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(min_size=1, max_size=300).filter(lambda s: "/" not in s and s not in (".", "..")),
    ident=st.text(min_size=1, max_size=300).filter(lambda s: "/" not in s and s not in (".", "..")),
)
def test_any_path_names_and_ids_get_a_4xx_or_an_answer(shared_url: str, name: str, ident: str) -> None:
    """Names and ids are data: whatever they hold, the answer is the envelope or a result, never 5xx."""
    with httpx.Client(base_url=shared_url) as client:
        reply = client.post(f"/agents/{_q(name)}/{_q(ident)}", json={"message": "x"})
        run = client.get(f"/runs/{_q(ident)}")
    assert reply.status_code in (200, 404, 422), reply.text
    assert run.status_code in (404, 422)
    if reply.status_code != 200:
        assert set(reply.json()) == {"error"}


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
