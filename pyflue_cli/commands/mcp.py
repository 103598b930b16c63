"""``pyflue mcp list``: the tools the MCP servers of a project's agents offer.

The servers are the ``mcp_servers`` of each agent's config (its initializer is called with the
instance id ``default``); each distinct server is started, asked for its tools and stopped. A server
that cannot start is listed on stderr with its error, never hiding the others, and the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..arguments import output_flags
from ..exits import COMPLETED, FAILED, CliError, one_line, print_error
from ..views import choose_mode, print_table

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "list the tools of the project's MCP servers"
DESCRIPTION = """\
Start the MCP servers named in the mcp_servers of the project's agents, list the tools each offers
(as the model sees them: mcp__<server>__<tool>), and stop them. Exits 1 when a server failed."""
EXAMPLES = "pyflue mcp list\n  pyflue mcp list assistant --json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list"], metavar="list", help="list the servers' tools")
    parser.add_argument(
        "agents", nargs="*", metavar="AGENT", help="only these agents' servers (default: all)"
    )
    output_flags(parser, json='print one JSON object: {"servers": [{"server", "tools", "error"}]}')


def run(args: argparse.Namespace) -> int:
    import anyio

    code: int = anyio.run(_list, args)
    return code


async def _list(args: argparse.Namespace) -> int:
    from pyflue.agent import AgentContext
    from pyflue.errors import PyFlueError
    from pyflue.mcp import list_mcp_tools

    from ..core import load_project, lookup

    project = load_project(args.project)
    names = args.agents or sorted(project.agents)
    specs: dict[Any, None] = {}
    for name in names:
        definition = lookup(project, "agent", name)
        try:
            config = await definition.configure(AgentContext("default", name))
        except PyFlueError as exc:
            raise CliError(one_line(exc)) from exc
        specs.update(dict.fromkeys(config.mcp_servers))
    try:
        listings = await list_mcp_tools(list(specs))
    except PyFlueError as exc:
        raise CliError(one_line(exc)) from exc
    mode = choose_mode(args, machine="quiet")
    rows = [(item.server, tool.name, tool.description or "") for item in listings for tool in item.tools]
    if mode == "json":
        from ..jsontext import write_json

        write_json(
            {
                "servers": [
                    {
                        "server": item.server,
                        "tools": [{"name": t.name, "description": t.description} for t in item.tools],
                        "error": None if item.error is None else str(item.error),
                    }
                    for item in listings
                ]
            }
        )
    elif mode == "quiet":
        sys.stdout.write("".join(f"{server}\t{tool}\t{_line(text)}\n" for server, tool, text in rows))
    elif rows:
        print_table(mode, ["server", "tool", "description"], [[s, t, _line(d)] for s, t, d in rows])
    else:
        print("no MCP servers" if not listings else "no tools")
    sys.stdout.flush()
    failed = [item for item in listings if item.error is not None]
    for item in failed:
        assert item.error is not None
        print_error(f"{item.server}: {one_line(item.error)}")
    return FAILED if failed else COMPLETED


def _line(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
