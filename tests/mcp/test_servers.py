"""Real MCP servers (``server_app.py``, written with the SDK's server API) over stdio and over
streamable HTTP, called by a scripted model through ``init(tools=[...])``; servers that crash
mid-call, fail to start, exit at once or never answer."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from pyflue import init
from pyflue.errors import ConfigError, ToolError
from pyflue.mcp import MCPServerError, MCPServers, list_mcp_tools
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel
from pyflue.runtime import Runtime
from pyflue.tools import Tool

from .conftest import TOKEN, stdio_spec

SLEEP = "import time; time.sleep(600)"
#: Guards against a hang (a test fails instead of blocking the suite); never a performance bound.
HANG = 60


def calls(*items: tuple[str, dict[str, Any]]) -> ModelResponse:
    parts = [ToolCallPart(f"c{i}", name, args) for i, (name, args) in enumerate(items)]
    return ModelResponse(list(parts), Usage(requests=1), "tool_calls")


def results(request: ModelRequest) -> dict[str, ToolResultPart]:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return {p.name: p for p in last.parts if isinstance(p, ToolResultPart)}


def scripted(*turns: ModelResponse) -> tuple[FunctionModel, list[ModelRequest]]:
    """A model that answers with ``turns`` in order, then with "done"."""
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        seen.append(request)
        return turns[len(seen) - 1] if len(seen) <= len(turns) else "done"

    return FunctionModel(respond), seen


async def run_scripted(tools: list[Tool], *turns: ModelResponse) -> list[ModelRequest]:
    model, seen = scripted(*turns)
    harness = await init(model=model, tools=tools)
    res = await (await harness.session()).prompt("go")
    assert res.text == "done"
    return seen


async def test_a_scripted_model_calls_stdio_server_tools() -> None:
    with anyio.fail_after(HANG):
        async with MCPServers([stdio_spec()]) as servers:
            tools = await servers.tools()
            assert [t.name for t in tools] == [
                "mcp__calc__add",
                "mcp__calc__shout",
                "mcp__calc__fail",
                "mcp__calc__pid",
                "mcp__calc__crash",
            ]
            seen = await run_scripted(
                tools,
                calls(
                    ("mcp__calc__add", {"a": 2, "b": 40}),
                    ("mcp__calc__shout", {"text": "hi"}),
                    ("mcp__calc__fail", {"reason": "not today"}),
                    ("mcp__calc__add", {"a": "two", "b": 1}),
                ),
            )
    definitions = {d.name: d for d in seen[0].tools}
    assert definitions["mcp__calc__add"].description == "Add two integers."
    add_schema = definitions["mcp__calc__add"].parameters
    assert add_schema["properties"]["a"]["type"] == "integer" and add_schema["required"] == ["a", "b"]
    last = seen[1].messages[-1]
    assert isinstance(last, UserMessage)
    by_id = {p.call_id: p for p in last.parts if isinstance(p, ToolResultPart)}
    assert (by_id["c0"].content, by_id["c0"].is_error) == ("42", False)
    assert (by_id["c1"].content, by_id["c1"].is_error) == ("HI", False)
    assert by_id["c2"].is_error and "refused: not today" in by_id["c2"].content
    assert by_id["c3"].is_error and "a must be integer" in by_id["c3"].content  # checked before the call


async def test_instances_share_one_server_process_until_closed() -> None:
    with anyio.fail_after(HANG):
        servers = MCPServers()
        async with servers:
            first = await servers.tools([stdio_spec()])
            second = await servers.tools([stdio_spec()])
            assert [id(t) for t in first] == [id(t) for t in second]  # the same tool objects
            pid = {t.name: t for t in first}["mcp__calc__pid"]
            seen_a = await run_scripted([pid], calls(("mcp__calc__pid", {})))
            seen_b = await run_scripted([pid], calls(("mcp__calc__pid", {})))
            pid_a = int(results(seen_a[1])["mcp__calc__pid"].content)
            pid_b = int(results(seen_b[1])["mcp__calc__pid"].content)
            assert pid_a == pid_b
            os.kill(pid_a, 0)  # running
        with pytest.raises(ProcessLookupError):
            os.kill(pid_a, 0)  # stopped (and reaped) when the owner closed
        with pytest.raises(ConfigError, match="closed"):
            servers.connection(stdio_spec())
        with pytest.raises(ConfigError, match="closed"):
            await pid.call({})


async def test_a_server_that_crashes_mid_call_is_an_error_result_then_restarts() -> None:
    with anyio.fail_after(HANG):
        async with MCPServers([stdio_spec()]) as servers:
            tools = await servers.tools()
            seen = await run_scripted(
                tools,
                calls(("mcp__calc__pid", {})),
                calls(("mcp__calc__crash", {})),
                calls(("mcp__calc__pid", {})),
            )
    before = int(results(seen[1])["mcp__calc__pid"].content)
    crashed = results(seen[2])["mcp__calc__crash"]
    assert crashed.is_error
    assert "MCP server 'calc'" in crashed.content
    assert "dropped the connection while calling 'crash'" in crashed.content
    assert "about to crash on purpose" in crashed.content  # the server's stderr
    after = results(seen[3])["mcp__calc__pid"]
    assert not after.is_error and int(after.content) != before  # a new server process


async def test_a_scripted_model_calls_http_server_tools(http_url: str) -> None:
    spec = {"name": "web", "url": http_url, "headers": {"x-token": TOKEN}}
    with anyio.fail_after(HANG):
        async with MCPServers([spec]) as servers:
            tools = await servers.tools()
            assert "mcp__web__shout" in [t.name for t in tools]
            seen = await run_scripted(
                tools,
                calls(("mcp__web__shout", {"text": "over http"}), ("mcp__web__fail", {"reason": "no"})),
            )
    got = results(seen[1])
    assert (got["mcp__web__shout"].content, got["mcp__web__shout"].is_error) == ("OVER HTTP", False)
    assert got["mcp__web__fail"].is_error and "refused: no" in got["mcp__web__fail"].content


async def test_http_server_refusing_the_client_is_a_typed_error(http_url: str) -> None:
    with anyio.fail_after(HANG):
        async with MCPServers([{"name": "web", "url": http_url, "headers": {"x-token": "wrong"}}]) as servers:
            with pytest.raises(MCPServerError) as info:
                await servers.tools()
    assert info.value.server == "web"
    assert str(info.value).startswith(f"MCP server 'web' ('{http_url}') failed to start:")
    assert "wrong" not in str(info.value)  # header values are never shown
    assert info.value.to_dict()["server"] == "web"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "ghost", "command": ["/nonexistent/mcp-server"]}, "failed to start: FileNotFoundError"),
        (stdio_spec("quitter", "--exit-at-once"), "stderr ends with: cannot start: missing configuration"),
        (
            {"name": "mute", "command": [sys.executable, "-c", SLEEP], "timeout": 0.5},
            "did not start within 0.5s",
        ),
        ({"name": "nobody", "url": "http://127.0.0.1:9/mcp"}, "failed to start: ConnectError"),
    ],
)
async def test_a_server_that_cannot_start_is_a_typed_error_naming_it(
    spec: dict[str, Any], words: str
) -> None:
    with anyio.fail_after(HANG):
        async with MCPServers([spec]) as servers:
            with pytest.raises(MCPServerError) as info:
                await servers.tools()
    assert isinstance(info.value, ToolError)  # inside a turn loop: an error result for the model
    assert info.value.server == spec["name"]
    assert str(info.value).startswith(f"MCP server {spec['name']!r}")
    assert words in str(info.value)


async def test_list_mcp_tools_reports_each_server() -> None:
    with anyio.fail_after(HANG):
        listings = await list_mcp_tools([stdio_spec(), {"name": "ghost", "command": ["/nonexistent/x"]}])
    assert [listing.server for listing in listings] == ["calc", "ghost"]
    assert listings[0].error is None and len(listings[0].tools) == 5
    assert listings[1].tools == () and isinstance(listings[1].error, MCPServerError)


async def test_an_owner_with_a_task_group_runs_the_connections() -> None:
    """What the runtime does: the connections run in its task group (``spawn=``)."""
    with anyio.fail_after(HANG):
        async with Runtime() as runtime:
            servers = MCPServers([stdio_spec()], spawn=runtime.start_soon)
            tools = {t.name: t for t in await servers.tools()}
            assert await tools["mcp__calc__add"].call({"a": 1, "b": 1}) == "2"
            await servers.aclose()
    without: Callable[[], MCPServers] = lambda: MCPServers([stdio_spec()])  # noqa: E731
    with pytest.raises(ConfigError, match="async with MCPServers"):
        await without().tools()
