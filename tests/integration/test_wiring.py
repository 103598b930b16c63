"""Sandboxes, skills, roles, ``AGENTS.md`` and MCP servers as an agent's config uses them, through
the public API: ``init``/``Project``, sessions, and a scripted model that sees what the agent sends."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from pydantic import Field

from pyflue import (
    Event,
    Project,
    Runtime,
    SandboxPolicy,
    ToolContext,
    create_agent,
    define_agent_profile,
    define_tool,
    init,
    local,
    virtual,
)
from pyflue.errors import ConfigError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel

MCP_SERVER = str(Path(__file__).parents[1] / "mcp" / "server_app.py")
#: Guards against a hang (a test fails instead of blocking the suite); never a performance bound.
HANG = 60


def calls(*items: tuple[str, dict[str, Any]]) -> ModelResponse:
    parts = [ToolCallPart(f"c{i}", name, args) for i, (name, args) in enumerate(items)]
    return ModelResponse(list(parts), Usage(requests=1), "tool_calls")


def scripted(*turns: ModelResponse | str) -> tuple[FunctionModel, list[ModelRequest]]:
    """A model that answers with ``turns`` in order, then with "done"; ``seen`` records requests."""
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        seen.append(request)
        return turns[len(seen) - 1] if len(seen) <= len(turns) else "done"

    return FunctionModel(respond, output_mode="native"), seen


def results(request: ModelRequest) -> dict[str, ToolResultPart]:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return {p.call_id: p for p in last.parts if isinstance(p, ToolResultPart)}


# -- tools -------------------------------------------------------------------------------------------


async def _limited(count: Annotated[int, Field(ge=1, le=5)]) -> int:
    return count


def test_annotated_field_constraints_reach_the_schema_and_validation() -> None:
    tool = define_tool("limited", _limited)
    schema = tool.definition.parameters["properties"]["count"]
    assert (schema["minimum"], schema["maximum"]) == (1, 5)


async def test_annotated_constraints_are_checked_before_the_tool_runs() -> None:
    model, seen = scripted(calls(("limited", {"count": 9}), ("limited", {"count": 3})))
    harness = await init(model=model, tools=[define_tool("limited", _limited)])
    await (await harness.session()).prompt("go")
    by_id = results(seen[1])
    assert by_id["c0"].is_error and "count" in by_id["c0"].content
    assert (by_id["c1"].is_error, by_id["c1"].content) == (False, "3")


# -- sandboxes ---------------------------------------------------------------------------------------


async def test_sandbox_tools_and_session_fs_share_the_agent_sandbox() -> None:
    events: list[Event] = []
    model, seen = scripted(
        calls(("write", {"path": "/notes/a.txt", "content": "hello"})),
        calls(("read", {"path": "/notes/a.txt"})),
    )
    harness = await init(model=model, sandbox="virtual", sandbox_tools=True, on_event=events.append)
    session = await harness.session()
    await session.prompt("go")
    offered = {d.name for d in seen[0].tools}
    assert {"read", "write", "edit", "grep", "glob"} <= offered and "bash" not in offered  # virtual: no shell
    assert "hello" in results(seen[2])["c0"].content
    assert await session.fs.read("/notes/a.txt") == "hello"
    await session.fs.write("/b.txt", "code")
    writes = [e for e in events if e.type == "fs_write"]
    assert [e.data["path"] for e in writes] == ["/notes/a.txt", "/b.txt"]
    assert writes[1].session_id == "default" and writes[1].agent == harness.name
    again = await harness.session("other")
    assert await again.fs.read("/b.txt") == "code"  # one sandbox per instance


async def test_a_given_sandbox_reaches_tool_contexts_and_session_shell(tmp_path: Path) -> None:
    box = local(tmp_path, policy=SandboxPolicy(shell=True, commands={"cat"}))
    seen_by_tool: list[Any] = []

    async def probe(ctx: ToolContext) -> str:
        seen_by_tool.append(ctx.sandbox)
        return "ok"

    events: list[Event] = []
    model, _ = scripted(calls(("probe", {})))
    harness = await init(model=model, sandbox=box, tools=[probe], on_event=events.append)
    session = await harness.session()
    await session.prompt("go")
    assert seen_by_tool == [box] and harness.sandbox is box
    (tmp_path / "f.txt").write_text("from disk")
    result = await session.shell("cat f.txt")
    assert (result.exit_code, result.stdout.strip()) == (0, "from disk")
    assert [(e.type, e.data["command"], e.data["exit_code"]) for e in events if e.type == "shell_exec"] == [
        ("shell_exec", "cat f.txt", 0)
    ]


async def test_sandbox_config_errors_name_the_agent() -> None:
    def read(path: str) -> str:
        return path

    with pytest.raises(ConfigError, match=r"agent 'agent'.*'read'"):
        await init(model="test", tools=[read], sandbox_tools=True)
    with pytest.raises(ConfigError, match=r"agent 'agent': config key 'sandbox'"):
        await init(model="test", sandbox="/tmp")


def test_a_profile_carries_its_sandbox_skills_role_and_servers() -> None:
    box = virtual()
    profile = define_agent_profile(
        name="worker",
        sandbox=box,
        sandbox_tools=True,
        skills=["review"],
        role="reviewer",
        mcp_servers=[{"name": "calc", "command": [sys.executable, MCP_SERVER]}],
    )
    from pyflue.config import parse_config

    config = parse_config({"profile": profile, "role": "mine"}, "a")
    assert config.sandbox is box and config.sandbox_tools and config.skills == ("review",)
    assert config.role == "mine"  # the agent's own key wins
    assert [s.name for s in config.mcp_servers] == ["calc"]


# -- projects: skills, roles, AGENTS.md --------------------------------------------------------------

AGENT = """
from pyflue import create_agent
CONFIG = {"instructions": "You are the assistant.", "skills": ["review", "summarize"], "role": "reviewer"}
default = create_agent(lambda ctx: CONFIG)
"""


def _project(root: Path) -> Path:
    (root / "agents").mkdir()
    (root / "agents" / "assistant.py").write_text(AGENT)
    (root / "skills" / "review").mkdir(parents=True)
    (root / "skills" / "review" / "SKILL.md").write_text(
        "---\ndescription: Review a diff.\n"
        'args: {"type": "object", "properties": {"diff": {"type": "string"}}, "required": ["diff"]}\n'
        'result: {"type": "object", "properties": {"verdict": {"enum": ["ok", "risky"]}},\n'
        '         "required": ["verdict"]}\n'
        "---\nCheck every line of the diff.\n"
    )
    (root / "skills" / "summarize.md").write_text("---\ndescription: Summarise.\n---\nThree bullets.\n")
    (root / "skills" / "broken.md").write_text("no frontmatter here\n")
    (root / "roles").mkdir()
    (root / "roles" / "reviewer.md").write_text("---\ndescription: Strict.\n---\nReject unsourced claims.\n")
    (root / "AGENTS.md").write_text("This project is a bakery.\n")
    return root


async def test_project_documents_reach_every_instance(tmp_path: Path) -> None:
    project = await Project.load_async(_project(tmp_path))
    assert sorted(project.skills) == ["review", "summarize"] and list(project.roles) == ["reviewer"]
    assert project.instructions == "This project is a bakery."
    assert project.errors["broken"].kind == "skill" and "broken.md" in str(project.errors["broken"])
    async with Runtime():
        harness = await project.instance("assistant", "u1")
        assert harness.instructions() == (
            "This project is a bakery.\n\nYou are the assistant.\n\nReject unsourced claims."
        )
        model, seen = scripted(calls(("activate_skill", {"name": "summarize"})))
        session = await harness.session()
        await session.prompt("summarise this", model=model)
    skill_tool = next(d for d in seen[0].tools if d.name == "activate_skill")
    assert "review: Review a diff." in skill_tool.description
    assert "Three bullets." not in str(seen[0].messages)  # no context until activated
    assert "Three bullets." in results(seen[1])["c0"].content
    assert seen[0].instructions is not None and seen[0].instructions.startswith("This project is a bakery.")


async def test_session_skill_runs_with_typed_output_and_checked_args(tmp_path: Path) -> None:
    project = await Project.load_async(_project(tmp_path))
    model, seen = scripted('{"verdict": "risky"}')
    agent = create_agent(lambda ctx: {"model": model, "skills": ["review"]})
    harness = await init(agent, documents=project.documents, root=project.source)
    session = await harness.session()
    with pytest.raises(ConfigError, match=r"skill 'review'.*diff"):
        await session.skill("review", args={})
    with pytest.raises(ConfigError, match="no skill named"):
        await session.skill("summarize")  # the project's, but not this agent's
    events: list[Event] = []
    harness.bus.subscribe(events.append)
    res = await session.skill("review", args={"diff": "+x = 1"})
    assert res.output == {"verdict": "risky"}
    prompt = str(seen[0].messages[-1])
    assert "Check every line of the diff." in prompt and "+x = 1" in prompt
    assert [e.data["kind"] for e in events if e.type == "operation_start"] == ["skill"]


WORKFLOW = """
async def run(ctx):
    harness = await ctx.init("assistant")
    return {"instructions": harness.instructions(), "skills": sorted(harness.skills)}
"""


async def test_workflow_agents_get_the_project_documents(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "workflows").mkdir()
    (root / "workflows" / "show.py").write_text(WORKFLOW)
    project = await Project.load_async(root)
    async with Runtime():
        record = await project.run("show")
    assert record.status == "completed", record.error
    assert record.result == {
        "instructions": "This project is a bakery.\n\nYou are the assistant.\n\nReject unsourced claims.",
        "skills": ["review", "summarize"],
    }


async def test_project_instructions_can_be_turned_off_and_roles_layered_on_tasks(tmp_path: Path) -> None:
    project = await Project.load_async(_project(tmp_path))
    model, seen = scripted()
    agent = create_agent(lambda ctx: {"model": model, "instructions": "Base.", "project_instructions": False})
    harness = await init(agent, documents=project.documents, root=project.source)
    assert harness.instructions() == "Base."
    session = await harness.session()
    await session.task("check this", role="reviewer")
    assert seen[-1].instructions == "Base.\n\nReject unsourced claims."
    with pytest.raises(ConfigError, match="no role 'judge'; available: reviewer"):
        await session.task("check", role="judge")
    with pytest.raises(ConfigError, match="config key 'role'"):
        await init(model="test", role="reviewer")  # no project: no roles by name


# -- MCP servers from the config ---------------------------------------------------------------------


async def test_config_mcp_servers_give_the_model_their_tools() -> None:
    spec = {"name": "calc", "command": [sys.executable, MCP_SERVER]}
    with anyio.fail_after(HANG):
        async with Runtime() as runtime:
            model, seen = scripted(calls(("mcp__calc__add", {"a": 2, "b": 40}), ("mcp__calc__pid", {})))
            harness = await init(model=model, mcp_servers=[spec])
            await (await harness.session()).prompt("add")
            other = await init(model=model, mcp_servers=[spec])
            assert other.offered["mcp__calc__add"] is harness.offered["mcp__calc__add"]  # shared
            assert runtime.mcp() is runtime.mcp()
    assert results(seen[1])["c0"].content == "42"
    pid = int(results(seen[1])["c1"].content)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the runtime stopped (and reaped) its servers when it closed


async def test_bad_mcp_servers_are_config_errors_naming_the_agent() -> None:
    with pytest.raises(ConfigError, match=r"agent 'agent': config key 'mcp_servers'"):
        await init(model="test", mcp_servers=[{"name": "x"}])
    with pytest.raises(ConfigError, match=r"agent 'agent': config key 'mcp_servers'"):
        await init(model="test", mcp_servers={"name": "x", "command": ["x"]})
