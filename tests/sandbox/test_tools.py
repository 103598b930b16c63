"""The model-facing tools: each one on both backends through ``Tool.call`` with a ToolContext,
escapes through every tool, bounded results, events, concurrent calls on one sandbox, and a whole
agent run driven by a scripted model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue import init
from pyflue.errors import ConfigError, ToolError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel
from pyflue.sandbox import Sandbox, SandboxPathError, SandboxPolicy, local, sandbox_tools, virtual
from pyflue.tools import Tool, ToolContext

from .conftest import SECRET, snapshot

Recorded = list[tuple[str, dict[str, Any]]]
BACKENDS: list[Callable[[Path], Sandbox]] = [
    lambda root: local(root, policy=SandboxPolicy(shell=True, commands={"ls", "cat", "printenv"})),
    lambda root: virtual(),
]


def _tools(sandbox: Sandbox | None = None) -> dict[str, Tool]:
    return {tool.name: tool for tool in sandbox_tools(sandbox)}


def _ctx(sandbox: Sandbox | None, events: Recorded) -> ToolContext:
    return ToolContext(
        "agent",
        "instance",
        "session",
        "op-1",
        "call-1",
        sandbox=sandbox,
        emit=lambda t, d: events.append((t, d)),
    )


@pytest.mark.parametrize("make", BACKENDS)
async def test_each_tool_works_and_writes_are_events(make: Callable[[Path], Sandbox], tmp_path: Path) -> None:
    sandbox, events = make(tmp_path), []
    tools, ctx = _tools(), _ctx(sandbox, events)
    assert await tools["write"].call({"path": "src/app.py", "content": "a = 1\nb = 2\n"}, ctx) == (
        "wrote 12 bytes to src/app.py"
    )
    assert await tools["edit"].call(
        {"path": "src/app.py", "old_string": "b = 2", "new_string": "b = 3"}, ctx
    ) == ("replaced 1 occurrence in src/app.py")
    assert await tools["read"].call({"path": "/src/app.py"}, ctx) == "     1\ta = 1\n     2\tb = 3"
    assert await tools["grep"].call({"pattern": r"b = \d", "include": "*.py"}, ctx) == "/src/app.py:2: b = 3"
    assert await tools["glob"].call({"pattern": "**/*.py"}, ctx) == "/src/app.py"
    assert events == [
        ("fs_write", {"path": "/src/app.py", "bytes": 12, "op": "write"}),
        ("fs_write", {"path": "/src/app.py", "bytes": 12, "op": "edit"}),
    ]


@pytest.mark.parametrize("make", BACKENDS)
async def test_edit_requires_a_unique_exact_match(make: Callable[[Path], Sandbox], tmp_path: Path) -> None:
    sandbox, events = make(tmp_path), []
    tools, ctx = _tools(), _ctx(sandbox, events)
    await tools["write"].call({"path": "f.txt", "content": "x\nx\ny\n"}, ctx)
    with pytest.raises(ToolError, match="occurs 2 times"):
        await tools["edit"].call({"path": "f.txt", "old_string": "x", "new_string": "z"}, ctx)
    with pytest.raises(ToolError, match="not found"):
        await tools["edit"].call({"path": "f.txt", "old_string": "q", "new_string": "z"}, ctx)
    assert (
        await tools["edit"].call(
            {"path": "f.txt", "old_string": "x", "new_string": "z", "replace_all": True}, ctx
        )
        == "replaced 2 occurrences in f.txt"
    )
    assert await sandbox.read("f.txt") == b"z\nz\ny\n"


async def test_every_tool_refuses_escapes(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    policy = SandboxPolicy(shell=True, commands={"ls", "cat"})
    tools, events = _tools(), []
    ctx = _ctx(local(root, policy=policy), events)
    for path in ["../outside/secret.txt", "rel_out/secret.txt", "abs_out/secret.txt", "file_out", "sneaky",
                 "a\x00b", "x" * 5000]:  # fmt: skip
        for name, args in [("read", {"path": path}), ("write", {"path": path, "content": "pwned"}),
                           ("edit", {"path": path, "old_string": SECRET, "new_string": "pwned"}),
                           ("grep", {"pattern": "TOPSECRET", "path": path}),
                           ("glob", {"pattern": "*", "path": path})]:  # fmt: skip
            with pytest.raises(SandboxPathError):
                await tools[name].call(args, ctx)
    for command in ["cat ../outside/secret.txt; ls", "ls $(cat /etc/passwd)", "sh -c id", "ls | cat", "env"]:
        with pytest.raises(ToolError):
            await tools["bash"].call({"command": command}, ctx)
    assert snapshot(outside) == {"secret.txt": SECRET.encode()}
    assert events == []
    assert "TOPSECRET" not in await tools["grep"].call({"pattern": "TOPSECRET"}, ctx)


async def test_results_are_bounded_with_a_truncation_marker() -> None:
    sandbox = virtual({"big.txt": "\n".join(f"line {i} " + "x" * 100 for i in range(5000))})
    tools, ctx = _tools(), _ctx(sandbox, [])
    text = await tools["read"].call({"path": "big.txt"}, ctx)
    assert len(text) < 31_000
    last = int(text.splitlines()[-2].split("\t")[0])
    assert text.endswith(f"read again with offset={last + 1}]")
    follow = await tools["read"].call({"path": "big.txt", "offset": last + 1, "limit": 1}, ctx)
    assert follow.startswith(f"{last + 1:>6}\tline {last} ")
    hits = await tools["grep"].call({"pattern": "line"}, ctx)
    assert hits.endswith("[... stopped at 200 matches; narrow the pattern, the path or include]")
    for i in range(600):
        await sandbox.write(f"d/f{i:03}.txt", b"")
    listing = await tools["glob"].call({"pattern": "d/*"}, ctx)
    assert listing.endswith("[... stopped at 500 paths; use a narrower pattern or path]")
    with pytest.raises(ToolError, match="offset"):
        await tools["read"].call({"path": "big.txt", "offset": 0}, ctx)


async def test_bash_reports_exit_code_output_and_redacts_granted_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYFLUE_TEST_SECRET", "host-secret-value")
    policy = SandboxPolicy(shell=True, commands={"printenv", "ls"}, secrets={"GITHUB_TOKEN": "ghp_abcdef123"})
    events: Recorded = []
    ctx = _ctx(local(tmp_path, policy=policy), events)
    bash = _tools()["bash"]
    assert (
        await bash.call({"command": "printenv GITHUB_TOKEN"}, ctx)
        == "exit code: 0\nstdout:\n[secret GITHUB_TOKEN]"
    )
    assert await bash.call({"command": "printenv PYFLUE_TEST_SECRET"}, ctx) == "exit code: 1\n(no output)"
    assert (await bash.call({"command": "ls no-such-file"}, ctx)).startswith("exit code: 2\nstderr:\n")
    assert [d["exit_code"] for t, d in events if t == "shell_exec"] == [0, 1, 2]


async def test_tools_without_a_sandbox_fail_clearly_and_bound_tools_hide_an_unusable_bash(
    tmp_path: Path,
) -> None:
    with pytest.raises(ToolError, match="no sandbox"):
        await _tools()["read"].call({"path": "x"}, _ctx(None, []))
    with pytest.raises(ToolError, match="does not implement"):
        await _tools()["read"].call({"path": "x"}, _ctx("virtual", []))  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="no shell"):
        await _tools()["bash"].call({"command": "ls"}, _ctx(virtual(), []))
    assert [t.name for t in sandbox_tools(virtual())] == ["read", "write", "edit", "grep", "glob"]
    assert [t.name for t in sandbox_tools(local(tmp_path))] == ["read", "write", "edit", "grep", "glob"]
    shell = local(tmp_path, policy=SandboxPolicy(shell=True))
    assert [t.name for t in sandbox_tools(shell, include=["bash"])] == ["bash"]
    with pytest.raises(ConfigError):
        sandbox_tools(include=["rm"])
    with pytest.raises(ConfigError):
        sandbox_tools("virtual")  # type: ignore[arg-type]


@pytest.mark.parametrize("make", BACKENDS)
async def test_concurrent_tool_calls_on_one_sandbox(make: Callable[[Path], Sandbox], tmp_path: Path) -> None:
    sandbox, events = make(tmp_path), []
    tools, ctx = _tools(), _ctx(sandbox, events)
    await tools["write"].call({"path": "shared.txt", "content": "".join(f"<{i}>\n" for i in range(40))}, ctx)

    async def worker(i: int) -> None:
        await tools["write"].call({"path": f"own/{i}.txt", "content": str(i) * 1000}, ctx)
        await tools["edit"].call({"path": "shared.txt", "old_string": f"<{i}>", "new_string": f"[{i}]"}, ctx)
        assert await tools["read"].call({"path": f"own/{i}.txt"}, ctx) == f"     1\t{str(i) * 1000}"

    async with anyio.create_task_group() as tasks:
        for i in range(40):
            tasks.start_soon(worker, i)
    assert (await sandbox.read("shared.txt")).decode() == "".join(f"[{i}]\n" for i in range(40))
    assert len([e for e in events if e[0] == "fs_write"]) == 81


def _script(steps: list[tuple[str, dict[str, Any]]]) -> tuple[FunctionModel, list[str]]:
    """A model that makes the calls in ``steps`` one turn each, then answers with what it saw."""
    seen: list[str] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        last = request.messages[-1]
        if isinstance(last, UserMessage):
            seen.extend(p.content for p in last.parts if isinstance(p, ToolResultPart))
        turn = len(seen)
        if turn < len(steps):
            name, args = steps[turn]
            return ModelResponse([ToolCallPart(f"c{turn}", name, args)], Usage(requests=1), "tool_calls")
        return "done"

    return FunctionModel(respond), seen


async def test_an_agent_uses_the_tools_end_to_end(tmp_path: Path) -> None:
    sandbox = local(tmp_path, policy=SandboxPolicy(shell=True, commands={"cat"}))
    model, seen = _script(
        [
            ("write", {"path": "notes/todo.md", "content": "- buy milk\n"}),
            ("edit", {"path": "notes/todo.md", "old_string": "milk", "new_string": "tea"}),
            ("bash", {"command": "cat notes/todo.md"}),
            ("read", {"path": "../etc/passwd"}),
            ("bash", {"command": "cat notes/todo.md; id"}),
        ]
    )
    events: list[Any] = []
    agent = await init(model=model, tools=[*sandbox_tools(sandbox)], on_event=events.append)
    session = await agent.session()
    result = await session.prompt("tidy my notes")
    assert result.text == "done"
    assert (tmp_path / "notes" / "todo.md").read_text() == "- buy tea\n"
    assert seen[2] == "exit code: 0\nstdout:\n- buy tea"
    assert seen[3].startswith("error: ") and "above the sandbox root" in seen[3]
    assert seen[4].startswith("error: shell syntax is not allowed here (sequence)")
    kinds = [e.type for e in events if e.type in ("fs_write", "shell_exec", "tool_end")]
    assert kinds == [
        "fs_write",
        "tool_end",
        "fs_write",
        "tool_end",
        "shell_exec",
        "tool_end",
        "tool_end",
        "tool_end",
    ]
    [shell] = [e for e in events if e.type == "shell_exec"]
    assert shell.operation_id == result.operation_id
    assert shell.data == {
        "command": "cat notes/todo.md",
        "exit_code": 0,
        "duration_ms": shell.data["duration_ms"],
        "timed_out": False,
    }
    json.dumps([e.data for e in events])  # every payload crosses boundaries as JSON
