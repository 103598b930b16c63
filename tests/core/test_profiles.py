"""Profiles: validation with errors naming the field, extension, profiles as an agent's base, and
what a subagent inherits from its parent (instructions/tools/subagents its own; model, settings,
compaction the parent's unless it sets them)."""

from __future__ import annotations

from typing import Any

import pytest

from pyflue import (
    CompactionConfig,
    create_agent,
    define_agent_profile,
    define_tool,
    extend_agent_profile,
    init,
)
from pyflue.errors import ConfigError, UnknownAgentError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import TextPart
from pyflue.models.testing import FunctionModel
from pyflue.profiles import AgentProfile
from pyflue.stores.memory import MemorySessionStore
from pyflue.tools import Tool


@define_tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


@define_tool
def cite(source: str) -> str:
    """Cite a source."""
    return source


def recorder(answer: str = "ok") -> tuple[FunctionModel, list[ModelRequest]]:
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse([TextPart(answer)], Usage(3, 2, requests=1))

    return FunctionModel(respond), seen


# -- definition and validation ---------------------------------------------------------------------


def test_define_from_a_dict_or_keywords() -> None:
    def plain(x: int) -> int:
        return x

    reviewer = define_agent_profile(
        {
            "name": "reviewer",
            "description": "Reviews a draft for factual errors.",
            "instructions": "You are a strict reviewer.",
            "model": "anthropic/claude-haiku-4-5",
            "tools": [lookup, plain],
        }
    )
    assert reviewer.name == "reviewer"
    assert reviewer.model == "anthropic/claude-haiku-4-5"
    assert all(isinstance(t, Tool) for t in reviewer.tools)
    assert [t.name for t in reviewer.tools] == ["lookup", "plain"]
    assert reviewer.model_settings is None and reviewer.compaction is None  # unset: inherited
    by_keywords = define_agent_profile(name="writer", instructions="Write.", max_turns=4)
    assert (by_keywords.name, by_keywords.instructions, by_keywords.max_turns) == ("writer", "Write.", 4)
    assert define_agent_profile({"name": "a"}, name="b").name == "b"  # keywords win


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"description": "no name"}, "field 'name' is required"),
        ({"name": "two words"}, "field 'name': must be 1-64 letters"),
        ({"name": "x" * 65}, "field 'name': must be 1-64 letters"),
        ({"name": "a", "tols": []}, "unknown field 'tols'; known fields: name, description"),
        ({"name": "a", "tools": [3]}, "field 'tools': entry 0 is a int, not a tool"),
        ({"name": "a", "tools": lookup}, "field 'tools': must be a list of tools"),
        ({"name": "a", "tools": [lookup, lookup]}, "field 'tools': two tools are named 'lookup'"),
        ({"name": "a", "model": 3}, "field 'model': must be a 'provider/model' string or a Model object"),
        ({"name": "a", "model_settings": {"temp": 1}}, "field 'model_settings': unknown setting 'temp'"),
        ({"name": "a", "model_settings": {"temperature": "hot"}}, "field 'model_settings': temperature:"),
        ({"name": "a", "subagents": [{"name": "b"}]}, "field 'subagents': entry 0 is a dict, not a profile"),
        ({"name": "a", "max_turns": 0}, "field 'max_turns': must be at least 1"),
        ({"name": "a", "compaction": {"keep_recent": 1}}, "field 'compaction': keep_recent: Extra inputs"),
        ({"name": "a", "compaction": "yes"}, "field 'compaction': must be a CompactionConfig"),
        ({"name": "a", "instructions": 3}, "field 'instructions'"),
    ],
)
def test_invalid_fields_raise_config_error_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        define_agent_profile(fields)
    assert message in str(info.value)
    assert str(info.value).startswith(f"agent profile {fields.get('name')!r}: ")


def test_subagent_names_must_be_distinct() -> None:
    one = define_agent_profile(name="helper")
    with pytest.raises(ConfigError, match="field 'subagents': two subagents are named 'helper'"):
        define_agent_profile(name="lead", subagents=[one, extend_agent_profile(one, description="again")])


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match="expects a dict or keyword fields, got list"):
        define_agent_profile(["reviewer"])  # type: ignore[arg-type]


def test_profiles_are_immutable() -> None:
    profile = define_agent_profile(name="reviewer")
    with pytest.raises(Exception, match="frozen"):
        profile.name = "other"


def test_compaction_accepts_a_dict_a_config_or_false() -> None:
    assert define_agent_profile(
        name="a", compaction={"keep_recent_tokens": 10}
    ).compaction == CompactionConfig(keep_recent_tokens=10)
    assert define_agent_profile(name="a", compaction=False).compaction is False
    config = CompactionConfig(context_window_tokens=5_000)
    assert define_agent_profile(name="a", compaction=config).compaction == config


# -- extension -------------------------------------------------------------------------------------


def test_extend_replaces_fields_and_keeps_the_base() -> None:
    helper = define_agent_profile(name="helper")
    base = define_agent_profile(
        name="reviewer",
        instructions="Review.",
        tools=[lookup],
        subagents=[helper],
        model_settings={"temperature": 0},
    )
    strict = extend_agent_profile(base, name="strict-reviewer", instructions="Review strictly.", tools=[cite])
    assert (strict.name, strict.instructions, [t.name for t in strict.tools]) == (
        "strict-reviewer",
        "Review strictly.",
        ["cite"],
    )
    assert strict.subagents == (helper,) and isinstance(strict.subagents[0], AgentProfile)  # still a profile
    assert strict.model_settings == {"temperature": 0}
    assert (base.name, base.instructions, [t.name for t in base.tools]) == ("reviewer", "Review.", ["lookup"])


def test_extend_validates_overrides() -> None:
    base = define_agent_profile(name="reviewer")
    with pytest.raises(ConfigError, match="agent profile 'reviewer': field 'max_turns': must be at least 1"):
        extend_agent_profile(base, max_turns=0)
    with pytest.raises(ConfigError, match="unknown field 'colour'"):
        extend_agent_profile(base, colour="red")
    with pytest.raises(ConfigError, match="expects a profile made by define_agent_profile, got dict"):
        extend_agent_profile({"name": "x"})  # type: ignore[arg-type]


# -- a profile as the base of an agent -------------------------------------------------------------


async def test_a_profile_as_an_agents_base_fills_what_the_agent_leaves_unset() -> None:
    model, seen = recorder()
    reviewer = define_agent_profile(
        name="reviewer",
        description="Reviews drafts.",
        instructions="You are a strict reviewer.",
        model=model,
        tools=[lookup],
        model_settings={"temperature": 0.1},
        max_turns=7,
    )
    agent = create_agent(lambda ctx: {"profile": reviewer, "tools": [cite]}, name="review-bot")
    harness = await init(agent, session_store=MemorySessionStore())
    assert harness.config.max_turns == 7 and harness.config.description == "Reviews drafts."
    assert list(harness.tools) == ["cite"]  # the agent's own key wins
    session = await harness.session()
    await session.prompt("check this")
    (request,) = seen
    assert request.instructions == "You are a strict reviewer."
    assert [t.name for t in request.tools] == ["cite"]
    assert request.settings == {"temperature": 0.1}


# -- what a subagent inherits ----------------------------------------------------------------------


async def test_a_subagent_gets_its_own_instructions_tools_and_subagents_and_the_parents_model() -> None:
    parent_model, parent_seen = recorder("parent")
    helper = define_agent_profile(name="helper", description="Helps.")
    reviewer = define_agent_profile(
        name="reviewer",
        description="Reviews.",
        instructions="Review strictly.",
        tools=[lookup],
        subagents=[helper],
    )
    agent = create_agent(
        lambda ctx: {
            "model": parent_model,
            "instructions": "You write.",
            "tools": [cite],
            "subagents": [reviewer],
            "model_settings": {"temperature": 0.5},
            "compaction": {"context_window_tokens": 9_999, "reserve_tokens": 99},
        },
        name="writer",
    )
    harness = await init(agent, session_store=MemorySessionStore())
    session = await harness.session()
    result = await session.task("Review: the sky is green.", agent="reviewer")
    assert result.text == "parent"  # the parent's model answered the child
    (request,) = parent_seen
    assert request.instructions == "Review strictly."
    assert [t.name for t in request.tools] == ["lookup", "task"]  # its own tools, and its own subagents
    task_tool = next(t for t in request.tools if t.name == "task")
    assert task_tool.parameters["properties"]["agent"]["enum"] == ["helper"]
    assert request.settings == {"temperature": 0.5}
    assert [type(m).__name__ for m in request.messages] == ["UserMessage"]  # a fresh context


async def test_a_subagents_own_model_and_settings_win() -> None:
    parent_model, parent_seen = recorder("parent")
    child_model, child_seen = recorder("child")
    reviewer = define_agent_profile(
        name="reviewer", model=child_model, model_settings={"temperature": 0.0}, compaction=False, max_turns=2
    )
    agent = create_agent(
        lambda ctx: {"model": parent_model, "subagents": [reviewer], "model_settings": {"temperature": 0.9}},
        name="writer",
    )
    harness = await init(agent, session_store=MemorySessionStore())
    session = await harness.session()
    result = await session.task("Review this.", agent="reviewer")
    assert result.text == "child" and parent_seen == []
    (request,) = child_seen
    assert request.settings == {"temperature": 0.0}
    assert request.instructions is None  # the parent's instructions never leak in


async def test_a_subagents_model_string_resolves_honouring_pyflue_model() -> None:
    reviewer = define_agent_profile(name="reviewer", model="anthropic/claude-haiku-4-5")
    parent_model, _ = recorder("parent")
    agent = create_agent(lambda ctx: {"model": parent_model, "subagents": [reviewer]}, name="writer")
    harness = await init(agent, session_store=MemorySessionStore(), env={"PYFLUE_MODEL": "test"})
    session = await harness.session()
    result = await session.task("Say hi.", agent="reviewer")
    assert result.text == "success (no tool calls)"  # TestModel, via PYFLUE_MODEL=test


async def test_an_unknown_subagent_lists_the_available_ones() -> None:
    model, _ = recorder()
    profiles = [define_agent_profile(name="reviewer"), define_agent_profile(name="fact-checker")]
    harness = await init(model=model, subagents=profiles, session_store=MemorySessionStore(), name="writer")
    session = await harness.session()
    with pytest.raises(UnknownAgentError) as info:
        await session.task("x", agent="editor")
    assert str(info.value) == "agent 'writer' has no subagent 'editor'; available: fact-checker, reviewer"
    lonely = await (await init(model=model, session_store=MemorySessionStore(), name="solo")).session()
    with pytest.raises(UnknownAgentError, match="agent 'solo' has no subagent 'editor': it has no subagents"):
        await lonely.task("x", agent="editor")
