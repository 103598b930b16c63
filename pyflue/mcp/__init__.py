"""Tools from MCP servers (extra ``mcp``): ``mcp__<server>__<tool>`` tools backed by servers run
as subprocesses (stdio) or reached over streamable HTTP. Importing this package does not import
the ``mcp`` SDK; starting a server does. See ``docs/mcp.md``."""

from __future__ import annotations

from .connection import MCPConnection, MCPServerError
from .servers import MCPServers, ServerListing, list_mcp_tools
from .specs import MCPServerSpec, parse_server_spec, parse_server_specs, tool_name

__all__ = [
    "MCPConnection",
    "MCPServerError",
    "MCPServerSpec",
    "MCPServers",
    "ServerListing",
    "list_mcp_tools",
    "parse_server_spec",
    "parse_server_specs",
    "tool_name",
]
