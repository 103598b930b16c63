"""Server specs are validated before anything starts; tool names are always valid."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.mcp import MCPServerSpec, parse_server_spec, parse_server_specs, tool_name


def test_stdio_and_http_specs() -> None:
    spec = parse_server_spec({"name": "fs", "command": ["npx", "server"], "env": {"B": "2", "A": "1"}})
    assert spec == MCPServerSpec("fs", command=("npx", "server"), env=(("A", "1"), ("B", "2")))
    assert spec.transport == "stdio" and spec.target == "npx server" and spec.timeout == 10.0
    web = parse_server_spec({"name": "web", "url": "https://x.test/mcp", "headers": {"a": "b"}, "timeout": 3})
    assert web.transport == "http" and web.headers == (("a", "b"),) and web.timeout == 3.0
    assert hash(spec) == hash(
        parse_server_spec({"name": "fs", "command": ["npx", "server"], "env": {"A": "1", "B": "2"}})
    )
    assert parse_server_spec(spec) is spec


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("fs", "MCP server: expected a dict"),
        ({"command": ["x"]}, "MCP server: 'name' must be"),
        ({"name": "a b", "command": ["x"]}, "'name' must be"),
        ({"name": "fs"}, "MCP server 'fs': give either 'command'"),
        ({"name": "fs", "command": ["x"], "url": "http://x"}, "MCP server 'fs': give either"),
        ({"name": "fs", "command": "npx server"}, "MCP server 'fs': 'command' must be a non-empty list"),
        ({"name": "fs", "command": []}, "'command' must be a non-empty list"),
        ({"name": "fs", "command": ["x"], "env": {"A": 1}}, "MCP server 'fs': 'env' must be a dict"),
        ({"name": "fs", "command": ["x"], "headers": {}}, "'headers' is for 'url' servers"),
        ({"name": "fs", "command": ["x"], "timeout": 0}, "'timeout' must be a positive number"),
        ({"name": "fs", "command": ["x"], "timeout": True}, "'timeout' must be a positive number"),
        ({"name": "fs", "command": ["x"], "cmd": ["y"]}, "MCP server 'fs': unknown key 'cmd'"),
        ({"name": "web", "url": "ftp://x"}, "MCP server 'web': 'url' must be an http"),
        ({"name": "web", "url": "http://x", "env": {}}, "'env' is for command servers"),
    ],
)
def test_bad_specs_name_the_server(value: Any, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_server_spec(value)
    assert words in str(info.value)


def test_spec_lists() -> None:
    assert parse_server_specs([]) == ()
    with pytest.raises(ConfigError, match="two MCP servers are named 'fs'"):
        parse_server_specs([{"name": "fs", "command": ["a"]}, {"name": "fs", "url": "http://b"}])
    with pytest.raises(ConfigError, match=r"MCP server #1: 'name' must be"):
        parse_server_specs([{"name": "fs", "command": ["a"]}, {"command": ["b"]}])
    with pytest.raises(ConfigError, match="must be a list"):
        parse_server_specs({"name": "fs", "command": ["a"]})


_VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", fullmatch=True), st.text(min_size=1, max_size=200))
def test_tool_names_are_always_valid(server: str, tool: str) -> None:
    name = tool_name(server, tool)
    assert _VALID.match(name)
    assert name.startswith(f"mcp__{server}__")
    if len(f"mcp__{server}__{tool}") <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", tool):
        assert name == f"mcp__{server}__{tool}"


def test_long_names_stay_distinct() -> None:
    a, b = tool_name("s", "x" * 80 + "a"), tool_name("s", "x" * 80 + "b")
    assert a != b and len(a) == len(b) == 64


def test_importing_the_package_does_not_import_the_sdk() -> None:
    code = (
        "import sys, pyflue, pyflue.mcp, pyflue.skills\n"
        "pyflue.mcp.parse_server_specs([{'name': 'x', 'command': ['y']}])\n"
        "print(sorted(m for m in ('mcp', 'httpx2', 'mcp_types') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
