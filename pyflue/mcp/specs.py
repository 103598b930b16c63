"""MCP server specs: which servers an agent uses, validated before anything starts.

A spec is a dict, as in an agent config's ``mcp_servers=[...]``::

    {"name": "files", "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "."]}
    {"name": "files", "command": [...], "env": {"TOKEN": "..."}, "cwd": "/srv", "timeout": 20}
    {"name": "search", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."}}

``command`` (an argv list, run as a subprocess speaking MCP over stdio) or ``url`` (streamable
HTTP), not both. ``timeout`` is how long the server may take to start and answer the MCP handshake
(seconds, default 10). This module needs no ``mcp`` package.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, shown

__all__ = ["DEFAULT_TIMEOUT", "MCPServerSpec", "parse_server_spec", "parse_server_specs", "tool_name"]

#: Seconds a server may take to start and finish the MCP handshake.
DEFAULT_TIMEOUT = 10.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_KEYS = ("name", "command", "env", "cwd", "url", "headers", "timeout")
_TOOL_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TOOL_NAME = 64


@dataclass(frozen=True, slots=True)
class MCPServerSpec:
    """One MCP server, validated and hashable (connections are shared per equal spec)."""

    name: str
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "http" if self.url is not None else "stdio"

    @property
    def target(self) -> str:
        """What the server is, for messages: its command line or its URL (header values never)."""
        return self.url if self.url is not None else " ".join(self.command)

    def __repr__(self) -> str:
        return f"MCPServerSpec({self.name!r}, {self.transport}: {shown(self.target)})"


def parse_server_specs(values: Iterable[Any]) -> tuple[MCPServerSpec, ...]:
    """Every spec of ``mcp_servers`` (``ConfigError`` naming the server, or its position when it
    has no usable name; two servers of one name are an error too)."""
    if isinstance(values, str | bytes | Mapping | MCPServerSpec):
        raise ConfigError("mcp_servers must be a list of server specs (dicts with a 'name')")
    specs: list[MCPServerSpec] = []
    for index, value in enumerate(values):
        spec = parse_server_spec(value, index)
        if any(s.name == spec.name for s in specs):
            raise ConfigError(f"two MCP servers are named {spec.name!r}; give each a distinct name")
        specs.append(spec)
    return tuple(specs)


def parse_server_spec(value: Any, index: int | None = None) -> MCPServerSpec:
    """One spec from its dict (a :class:`MCPServerSpec` passes through)."""
    if isinstance(value, MCPServerSpec):
        return value
    at = f"MCP server #{index}" if index is not None else "MCP server"
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{at}: expected a dict with 'name' and 'command' or 'url', got {type(value).__name__}"
        )
    name = value.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{at}: 'name' must be 1-32 letters, digits, '-' or '_', got {shown(name)}")
    who = f"MCP server {name!r}"
    unknown = [key for key in value if key not in _KEYS]
    if unknown:
        raise ConfigError(f"{who}: unknown key {shown(unknown[0])}; known keys: {', '.join(_KEYS)}")
    command, url = value.get("command"), value.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{who}: give either 'command' (an argv list, stdio) or 'url' (streamable HTTP)")
    timeout = value.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"{who}: 'timeout' must be a positive number of seconds, got {shown(timeout)}")
    if url is not None:
        for key in ("env", "cwd"):
            if key in value:
                raise ConfigError(f"{who}: {key!r} is for command servers; a 'url' server takes 'headers'")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{who}: 'url' must be an http:// or https:// URL, got {shown(url)}")
        headers = _strings(value.get("headers"), who, "headers")
        return MCPServerSpec(name, url=url, headers=headers, timeout=float(timeout))
    if "headers" in value:
        raise ConfigError(f"{who}: 'headers' is for 'url' servers; a command server takes 'env'")
    if (
        not isinstance(command, list | tuple)
        or not command
        or not all(isinstance(a, str) and a for a in command)
    ):
        raise ConfigError(
            f"{who}: 'command' must be a non-empty list of strings (the argv), "
            f'e.g. ["python", "server.py"], got {shown(command)}'
        )
    cwd = value.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ConfigError(f"{who}: 'cwd' must be a directory path string, got {shown(cwd)}")
    env = _strings(value.get("env"), who, "env")
    return MCPServerSpec(name, command=tuple(command), env=env, cwd=cwd, timeout=float(timeout))


def tool_name(server: str, tool: str) -> str:
    """The name the model sees: ``mcp__<server>__<tool>``, with characters tool names may not hold
    replaced by ``_`` and, past 64 characters, cut and made unique by a hash of the original."""
    name = f"mcp__{server}__{_TOOL_CHARS.sub('_', tool)}"
    if len(name) <= _MAX_TOOL_NAME:
        return name
    digest = hashlib.sha1(tool.encode()).hexdigest()[:8]
    return f"{name[: _MAX_TOOL_NAME - 9]}_{digest}"


def _strings(value: Any, who: str, key: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{who}: {key!r} must be a dict of strings to strings")
    return tuple(sorted(value.items()))
