"""``pyflue mcp list`` as a real subprocess, against a real MCP server process."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import cli, no_traceback

SERVER = str(Path(__file__).parents[1] / "mcp" / "server_app.py")


def _project(root: Path) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "calc.py").write_text(
        "import sys\nfrom pyflue import create_agent\n"
        f"SPEC = {{'name': 'calc', 'command': [sys.executable, {SERVER!r}]}}\n"
        "default = create_agent(lambda ctx: {'mcp_servers': [SPEC]})\n"
    )
    (root / "agents" / "broken.py").write_text(
        "import sys\nfrom pyflue import create_agent\n"
        f"SPEC = {{'name': 'bad', 'command': [sys.executable, {SERVER!r}, '--exit-at-once']}}\n"
        "default = create_agent(lambda ctx: {'mcp_servers': [SPEC]})\n"
    )
    return root


def test_mcp_list_shows_each_server_tools(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    result = cli("mcp", "list", "calc", "--json", cwd=root)
    no_traceback(result)
    assert result.code == 0, result.err
    (server,) = result.json()["servers"]
    assert server["server"] == "calc" and server["error"] is None
    tools = {t["name"]: t["description"] for t in server["tools"]}
    assert tools["mcp__calc__add"] == "Add two integers."
    plain = cli("mcp", "list", "calc", cwd=root)
    assert "calc\tmcp__calc__add\tAdd two integers." in plain.out.splitlines()


def test_mcp_list_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    result = cli("mcp", "list", cwd=root)
    no_traceback(result)
    assert result.code == 1
    assert "mcp__calc__add" in result.out
    assert "bad" in result.err and "missing configuration" in result.err
    unknown = cli("mcp", "list", "nope", cwd=root)
    assert unknown.code == 2 and "no agent named 'nope'" in unknown.err
