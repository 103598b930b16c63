"""Reading the session store over HTTP: an agent's instances (paged), an instance's sessions, and a
session's stored history (paged) with its tool calls, tool results and compaction summaries, against
a real server. The conversation is written by prompts over HTTP and by a compaction through the
Python API on the same SQLite file, as another process would."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pyflue import Project, init
from pyflue.stores.sqlite import SQLiteSessionStore
from pyflue_asgi import create_app
from tests.asgi._live import serve, sse
from tests.core._workflow_helpers import write_project

MARKUP = "<script>alert(1)</script> shipped"

FILES = {
    "agents/helper.py": f'''\
        """Looks orders up."""
        from pyflue import create_agent, define_tool

        @define_tool
        def lookup(order: int) -> str:
            """Look an order up."""
            return {MARKUP!r}

        default = create_agent(lambda ctx: {{"model": "test", "tools": [lookup]}})
        ''',
    "agents/echo.py": """\
        from pyflue import create_agent

        default = create_agent(lambda ctx: {"model": "test"})
        """,
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", FILES)


def seg(text: str) -> str:
    return quote(text, safe="")


async def prompt(client: httpx.AsyncClient, agent: str, instance: str, session: str, text: str) -> None:
    reply = await client.post(f"/agents/{agent}/{seg(instance)}", json={"message": text, "session": session})
    assert reply.status_code == 200, reply.text


async def messages(client: httpx.AsyncClient, instance: str, session: str, **query: Any) -> dict[str, Any]:
    reply = await client.get(f"/agents/helper/{seg(instance)}/sessions/{seg(session)}/messages", params=query)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def compact(root: Path, instance: str, session: str) -> None:
    """Compact a session through the Python API on the project's file, as another process would."""
    project = Project.load(root)
    store = SQLiteSessionStore(project.db_path)
    try:
        harness = await init(project.agent("helper"), id=instance, session_store=store)
        await (await harness.session(session)).compact(keep_recent=0)
    finally:
        await store.aclose()


async def test_instances_sessions_and_a_transcript_are_read_back(root: Path) -> None:
    with serve(create_app(root)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await prompt(client, "helper", "case 42", "billing", "where is order 7?")
            streamed = await client.post(
                f"/agents/helper/{seg('case 42')}",
                json={"message": "and now?", "session": "default"},
                headers={"Accept": "text/event-stream"},
            )
            assert [m for m in sse(streamed.text) if m.get("event") == "result"]
            await prompt(client, "helper", "ключ", "default", "hi")
            await prompt(client, "echo", "elsewhere", "default", "not the helper's")

            listed = await client.get("/agents/helper/instances")
            assert listed.json() == {"instances": ["case 42", "ключ"], "next_after": None}
            sessions = await client.get(f"/agents/helper/{seg('case 42')}/sessions")
            assert sessions.json() == {"instance_id": "case 42", "sessions": ["billing", "default"]}
            assert (await client.get("/agents/helper/nobody/sessions")).json()["sessions"] == []

            body = await messages(client, "case 42", "billing")
            assert body["agent"] == "helper" and body["session_id"] == "billing" and body["version"] > 0
            assert body["next_after"] is None
            assert [m["seq"] for m in body["messages"]] == [1, 2, 3, 4]
            user, call, result, answer = body["messages"]
            assert user["role"] == "user" and user["parts"] == [{"type": "text", "text": "where is order 7?"}]
            assert call["role"] == "assistant"
            (tool_call,) = call["parts"]
            assert tool_call["type"] == "tool_call" and tool_call["name"] == "lookup"
            assert tool_call["args"] == {"order": 0} and tool_call["id"]
            (tool_result,) = result["parts"]
            assert tool_result == {
                "type": "tool_result",
                "call_id": tool_call["id"],
                "name": "lookup",
                "content": MARKUP,
                "is_error": False,
            }
            assert answer["role"] == "assistant" and MARKUP in answer["parts"][0]["text"]
            assert all("compaction_summary" not in m for m in body["messages"])

            await compact(root, "case 42", "billing")
            await prompt(client, "helper", "case 42", "billing", "after the summary")
            compacted = await messages(client, "case 42", "billing")
            assert compacted["version"] > body["version"]
            first, *rest = compacted["messages"]
            assert first["role"] == "user" and first["compaction_summary"].strip()
            assert first["parts"][0]["text"].startswith("<conversation_summary>")
            assert rest[0]["parts"] == [{"type": "text", "text": "after the summary"}]
            assert all("compaction_summary" not in m for m in rest)

            empty = await messages(client, "case 42", "never")
            assert empty["messages"] == [] and empty["version"] == 0 and empty["next_after"] is None


async def test_instances_and_messages_come_a_page_at_a_time(root: Path) -> None:
    with serve(create_app(root)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for instance in ("c", "a", "b"):
                await prompt(client, "helper", instance, "default", f"hello {instance}")
            pages: list[list[str]] = []
            query: dict[str, Any] = {"limit": 2}
            while True:
                page = (await client.get("/agents/helper/instances", params=query)).json()
                pages.append(page["instances"])
                if page["next_after"] is None:
                    break
                query["after"] = page["next_after"]
            assert pages == [["a", "b"], ["c"]]
            tail = await client.get("/agents/helper/instances", params={"after": "b"})
            assert tail.json() == {"instances": ["c"], "next_after": None}

            seen: list[dict[str, Any]] = []
            after = 0
            while True:
                page = await messages(client, "a", "default", after=after, limit=3)
                assert len(page["messages"]) <= 3
                seen += page["messages"]
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            whole = await messages(client, "a", "default")
            assert seen == whole["messages"] and [m["seq"] for m in seen] == [1, 2, 3, 4]
            assert (await messages(client, "a", "default", after=4))["messages"] == []


async def test_the_read_routes_do_not_shadow_an_instance_named_like_them(root: Path) -> None:
    """``instances`` and ``sessions`` are ordinary instance and session ids for the other routes."""
    with serve(create_app(root)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await prompt(client, "helper", "instances", "sessions", "an odd name")
            assert (await client.get("/agents/helper/instances")).json()["instances"] == ["instances"]
            listed = await client.get("/agents/helper/instances/sessions")
            assert listed.json() == {"instance_id": "instances", "sessions": ["sessions"]}
            body = await messages(client, "instances", "sessions")
            assert body["messages"][0]["parts"][0]["text"] == "an odd name"
            aborted = await client.post("/agents/helper/instances/abort", params={"session": "sessions"})
            assert aborted.json() == {"aborted": False, "session": "sessions"}


BAD = [
    ("/agents/nobody/instances", 404, "UnknownAgentError"),
    ("/agents/nobody/i1/sessions", 404, "UnknownAgentError"),
    ("/agents/nobody/i1/sessions/default/messages", 404, "UnknownAgentError"),
    ("/agents/Bad%20Name/instances", 422, "ValidationError"),
    ("/agents/helper/instances?limit=0", 422, "ValidationError"),
    ("/agents/helper/instances?limit=many", 422, "ValidationError"),
    ("/agents/helper/instances?after=%07", 422, "ValidationError"),
    ("/agents/helper/instances?after=", 422, "ValidationError"),
    ("/agents/helper/i%0A1/sessions", 422, "ValidationError"),
    (f"/agents/helper/{'x' * 257}/sessions", 422, "ValidationError"),
    ("/agents/helper/i1/sessions/%1B/messages", 422, "ValidationError"),
    ("/agents/helper/i1/sessions/default/messages?after=-1", 422, "ValidationError"),
    ("/agents/helper/i1/sessions/default/messages?limit=1001", 422, "ValidationError"),
]


async def test_bad_requests_get_the_error_envelope(root: Path) -> None:
    with serve(create_app(root)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for path, status, kind in BAD:
                reply = await client.get(path)
                assert reply.status_code == status, (path, reply.text)
                assert reply.headers["content-type"].startswith("application/json")
                error = reply.json()["error"]
                assert error["type"] == kind and error["message"] and "Traceback" not in error["message"]
                if kind == "UnknownAgentError":
                    assert "echo" in error["message"] and "helper" in error["message"]  # names the agents


async def test_the_read_routes_need_the_token(root: Path) -> None:
    with serve(create_app(root, auth="t0ken")) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for path in (
                "/agents/helper/instances",
                "/agents/helper/i/sessions",
                "/agents/helper/i/sessions/s/messages",
            ):
                assert (await client.get(path)).status_code == 401
                ok = await client.get(path, headers={"Authorization": "Bearer t0ken"})
                assert ok.status_code == 200, ok.text
