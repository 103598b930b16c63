"""create_agent / init: config validation, initializers, instance ids, sessions, and the user-facing
example run verbatim against a local Anthropic wire server."""

from __future__ import annotations

from typing import Any

import pytest

from pyflue import AgentConfig, AgentContext, create_agent, define_tool, init
from pyflue.errors import ConfigError, InvalidIdError
from pyflue.models.base import ModelRequest
from pyflue.models.testing import FunctionModel, TestModel
from pyflue.stores.memory import MemorySessionStore
from tests.models import anthropic_fixtures as fx
from tests.wire import WireServer


def recorder(answer: str = "ok") -> tuple[FunctionModel, list[ModelRequest]]:
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> str:
        seen.append(request)
        return answer

    return FunctionModel(respond), seen


# -- config validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"model": "test", "temprature": 0.2},
            "agent 'support': unknown config key 'temprature'; known keys: model",
        ),
        (
            {"model": "test", "max_turns": "many"},
            "agent 'support': config key 'max_turns': Input should be a valid",
        ),
        (
            {"model": "test", "max_turns": 0},
            "agent 'support': config key 'max_turns': Input should be greater",
        ),
        (
            {"model": "test", "tools": "lookup"},
            "agent 'support': config key 'tools': Input should be a valid list",
        ),
        ({"model": "test", "instructions": 5}, "agent 'support': config key 'instructions': "),
        ({"model": "test", "output_retries": -1}, "agent 'support': config key 'output_retries': "),
        ({"model": "test", "tool_timeout": 0}, "agent 'support': config key 'tool_timeout': "),
        ({"model": "test", "model_settings": [1]}, "agent 'support': config key 'model_settings': "),
        (
            {"model": "test", "model_settings": {"temperature": "hot"}},
            "agent 'support': config key 'model_settings': temperature: Input should be a valid number",
        ),
        (
            {"model": "test", "model_settings": {"temprature": 0.1}},
            "agent 'support': config key 'model_settings': unknown setting 'temprature'",
        ),
        ({"model": "test", "compaction": {"bogus": 1}}, "agent 'support': config key 'compaction': "),
        ({"model": 5}, "agent 'support': config key 'model': model must be a 'provider/model' string"),
        ({"model": "gpt4"}, "agent 'support': config key 'model': model 'gpt4' must look like"),
        ({"model": "nosuch/model"}, "agent 'support': config key 'model': unknown model provider 'nosuch'"),
    ],
)
async def test_bad_config_names_the_key_and_the_agent(config: dict[str, Any], message: str) -> None:
    agent = create_agent(lambda ctx: config, name="support")
    with pytest.raises(ConfigError) as info:
        await init(agent, session_store=MemorySessionStore())
    assert str(info.value).startswith(message), str(info.value)


async def test_ad_hoc_config_is_validated_the_same_way() -> None:
    with pytest.raises(ConfigError, match="agent 'agent': unknown config key 'tols'"):
        await init(model="test", tols=[])
    with pytest.raises(ConfigError, match="agent 'helper': config key 'max_turns'"):
        await init(model="test", name="helper", max_turns="x")


async def test_initializer_must_return_a_config() -> None:
    with pytest.raises(
        ConfigError, match="agent 'a': the initializer must return a dict or AgentConfig, got str"
    ):
        await init(create_agent(lambda ctx: "test", name="a"))


async def test_initializer_errors_become_config_errors() -> None:
    def broken(ctx: AgentContext) -> dict[str, Any]:
        raise KeyError("TENANT")

    with pytest.raises(ConfigError, match="agent 'b': its initializer raised KeyError: 'TENANT'") as info:
        await init(create_agent(broken, name="b"))
    assert isinstance(info.value.__cause__, KeyError)


def test_create_agent_needs_a_function() -> None:
    with pytest.raises(ConfigError, match="create_agent expects a function"):
        create_agent({"model": "test"})  # type: ignore[arg-type]


async def test_init_rejects_config_keywords_with_an_agent_and_non_agents() -> None:
    agent = create_agent(lambda ctx: {"model": "test"})
    with pytest.raises(ConfigError, match=r"takes no agent config keywords \(model\)"):
        await init(agent, model="test")
    with pytest.raises(ConfigError, match="expects an agent made by create_agent, got dict"):
        await init({"model": "test"})  # type: ignore[arg-type]


# -- initializers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["sync", "async", "config-object"])
async def test_initializers_sync_async_and_config_objects_shape_each_instance(style: str) -> None:
    model, seen = recorder()
    contexts: list[AgentContext] = []

    def build(ctx: AgentContext) -> dict[str, Any] | AgentConfig:
        contexts.append(ctx)
        config = {"model": model, "instructions": f"Help with support case {ctx.id}.", "max_turns": 3}
        return AgentConfig(**config) if style == "config-object" else config

    async def build_async(ctx: AgentContext) -> dict[str, Any] | AgentConfig:
        return build(ctx)

    agent = create_agent(build_async if style == "async" else build, name="support")
    store = MemorySessionStore()
    first = await init(agent, id="case-42", session_store=store, env={"TIER": "gold"})
    second = await init(agent, id="case-43", session_store=store)
    assert first.config.max_turns == 3
    await (await first.session()).prompt("hi")
    await (await second.session()).prompt("hi")
    assert [r.instructions for r in seen] == [
        "Help with support case case-42.",
        "Help with support case case-43.",
    ]
    assert [(c.id, c.name) for c in contexts] == [("case-42", "support"), ("case-43", "support")]
    assert contexts[0].env == {"TIER": "gold"}
    assert (first.id, first.name) == ("case-42", "support")


async def test_instructions_may_be_a_function_of_the_context() -> None:
    model, seen = recorder()
    harness = await init(
        model=model, instructions=lambda ctx: f"You serve {ctx.id} of {ctx.name}.", id="t1", name="desk"
    )
    await (await harness.session()).prompt("hi")
    assert seen[0].instructions == "You serve t1 of desk."


async def test_ad_hoc_init_and_model_strings() -> None:
    harness = await init(model="test", instructions="Be brief.", session_store=MemorySessionStore())
    assert isinstance(harness.model, TestModel)
    assert harness.name == "agent" and harness.id == "default"
    res = await (await harness.session()).prompt("hello")
    assert res.text == "success (no tool calls)"
    assert res.finish_reason == "stop"
    assert res.usage.requests == 1


async def test_pyflue_model_env_overrides_model_strings_but_not_objects() -> None:
    agent = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"})
    harness = await init(agent, env={"PYFLUE_MODEL": "test"})
    assert isinstance(harness.model, TestModel)
    model, _ = recorder()
    harness = await init(model=model, env={"PYFLUE_MODEL": "test"})
    assert harness.model is model


async def test_an_agent_without_a_model_fails_at_its_first_prompt() -> None:
    events: list[Any] = []
    harness = await init(on_event=events.append, session_store=MemorySessionStore())
    session = await harness.session()
    with pytest.raises(ConfigError, match="no model configured"):
        await session.prompt("hi")
    assert session.history == []


async def test_missing_api_key_is_a_clear_config_error() -> None:
    agent = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"}, name="support")
    with pytest.raises(
        ConfigError, match="agent 'support': config key 'model': ANTHROPIC_API_KEY is not set"
    ):
        await init(agent, env={})


# -- ids and sessions ------------------------------------------------------------------------------


async def test_sessions_are_cached_per_id() -> None:
    harness = await init(model="test", session_store=MemorySessionStore())
    default = await harness.session()
    assert default.id == "default"
    assert await harness.session("default") is default
    billing = await harness.session("billing")
    assert billing is not default and billing.id == "billing"
    await billing.prompt("invoice?")
    assert len(billing.history) == 2 and default.history == []


@pytest.mark.parametrize("bad", ["", "a\nb", "tab\there", "nul\x00", "x" * 257, "bell\x07"])
async def test_control_characters_and_bad_lengths_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        await init(model="test", id=bad)
    harness = await init(model="test", session_store=MemorySessionStore())
    with pytest.raises(InvalidIdError):
        await harness.session(bad)


async def test_non_string_ids_are_rejected() -> None:
    with pytest.raises(InvalidIdError, match="instance id must be a string, got int"):
        await init(model="test", id=7)  # type: ignore[arg-type]
    harness = await init(model="test", session_store=MemorySessionStore())
    with pytest.raises(InvalidIdError, match="session id must be a string"):
        await harness.session(None)  # type: ignore[arg-type]


async def test_instances_with_one_store_share_history_by_id() -> None:
    store = MemorySessionStore()
    agent = create_agent(lambda ctx: {"model": "test"}, name="notes")
    first = await init(agent, id="u1", session_store=store)
    await (await first.session()).prompt("remember 42")
    again = await init(agent, id="u1", session_store=store)
    other = await init(agent, id="u2", session_store=store)
    assert [m.role for m in (await again.session()).history] == ["user", "assistant"]
    assert (await other.session()).history == []


# -- the user-facing example, verbatim ---------------------------------------------------------------

lookup_calls: list[str] = []


@define_tool
async def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up by id."""
    lookup_calls.append(order_id)
    return {"order_id": order_id, "status": "shipped"}


async def test_the_readme_example_against_the_anthropic_wire(
    wire: WireServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", wire.url)
    lookup_calls.clear()
    # With an observer the loop streams (so text deltas reach it): the wire answers with SSE.
    wire.sse(
        fx.stream_events(
            fx.message([fx.tool_use("toolu_1", "lookup_order", {"order_id": "7"})], stop_reason="tool_use")
        )
    )
    wire.sse(fx.stream_events(fx.message([fx.text("Order 7 has shipped.")])))

    from pyflue import create_agent, define_tool  # noqa: F401 - as the user writes it

    default = create_agent(
        lambda ctx: {
            "model": "anthropic/claude-haiku-4-5",
            "instructions": f"Help with support case {ctx.id}.",
            "tools": [lookup_order],
        }
    )
    from pyflue import init

    harness = await init(default, id="case-42", on_event=print, session_store=MemorySessionStore())
    session = await harness.session()
    res = await session.prompt("Where is my order 7?")

    assert res.text == "Order 7 has shipped."
    assert res.finish_reason == "stop"
    assert res.usage.requests == 2
    assert res.usage.input_tokens == 2 * fx.USAGE["input_tokens"]
    assert res.operation_id and len(res.operation_id) == 26
    assert [m.role for m in res.messages] == ["user", "assistant", "user", "assistant"]
    assert lookup_calls == ["7"]
    first, second = (seen.json() for seen in wire.requests)
    assert first["system"][0]["text"] == "Help with support case case-42."
    assert first["tools"][0]["name"] == "lookup_order"
    assert first["tools"][0]["input_schema"]["required"] == ["order_id"]
    tool_result = second["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == "toolu_1"
    assert '"status":"shipped"' in tool_result["content"]
    printed = capsys.readouterr().out
    for kind in ("operation_start", "model_start", "text_delta", "tool_start", "tool_end", "operation_end"):
        assert f"Event({kind!r}" in printed


@pytest.mark.parametrize("empty", ["", "   ", [], [{"type": "text", "text": ""}]], ids=repr)
async def test_an_empty_prompt_is_refused_and_leaves_no_trace(empty: Any) -> None:
    calls: list[Any] = []
    harness = await init(
        model=FunctionModel(lambda r: calls.append(r) or "ok"), session_store=MemorySessionStore()
    )
    session = await harness.session()
    with pytest.raises(ConfigError, match=r"the input is empty|a non-empty list"):
        await session.prompt(empty)
    assert calls == [] and session.history == []
    assert (await session.prompt("hi")).text == "ok"


async def test_instructions_that_raise_or_are_not_text_are_config_errors() -> None:
    def broken(ctx: Any) -> str:
        raise KeyError("tenant")

    session = await (await init(model=FunctionModel(lambda r: "ok"), instructions=broken)).session()
    with pytest.raises(ConfigError, match="config key 'instructions': the callable raised KeyError"):
        await session.prompt("hi")
    numbers = await (await init(model=FunctionModel(lambda r: "ok"), instructions=lambda ctx: 42)).session()
    with pytest.raises(ConfigError, match="returned a int, not a string"):
        await numbers.prompt("hi")


async def test_an_unknown_run_id_is_named_but_not_echoed_in_full(tmp_path: Any) -> None:
    from pyflue import get_run
    from pyflue.errors import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        await get_run("x" * 10_000, project=tmp_path)
    assert len(str(caught.value)) < 200 and "xxxx" in str(caught.value)
