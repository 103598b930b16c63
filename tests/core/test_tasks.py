"""Subagent tasks: isolation, correlation on one bus, the model's task tool running tasks in parallel,
depth limits, usage roll-up, abort propagation, and what a direct task records in the parent."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from pyflue import ToolContext, create_agent, define_agent_profile, define_tool, init
from pyflue.errors import AbortedError, ConfigError, TaskDepthError
from pyflue.events import Event
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    text_of,
)
from pyflue.models.testing import FunctionModel
from pyflue.session import PromptResult, Session
from pyflue.stores.memory import MemorySessionStore
from pyflue.stores.sessions import SessionKey

Respond = Callable[[ModelRequest], "ModelResponse | str"]


def text(value: str, usage: Usage | None = None) -> ModelResponse:
    return ModelResponse([TextPart(value)], usage or Usage(requests=1))


def calls(*items: tuple[str, str, dict[str, Any]], usage: Usage | None = None) -> ModelResponse:
    parts: list[Any] = [ToolCallPart(call_id, name, args) for call_id, name, args in items]
    return ModelResponse(parts, usage or Usage(requests=1), "tool_calls")


def results_in(request: ModelRequest) -> list[ToolResultPart]:
    last = request.messages[-1]
    return [p for p in last.parts if isinstance(p, ToolResultPart)] if isinstance(last, UserMessage) else []


def tool_then_answer(
    tool: str, args: dict[str, Any], answer: Callable[[list[ToolResultPart]], str]
) -> Respond:
    """First call: ``tool(args)``; after its result: ``answer(results)``."""

    def respond(request: ModelRequest) -> ModelResponse | str:
        found = results_in(request)
        return answer(found) if found else calls(("c1", tool, args))

    return respond


async def start(agent_config: dict[str, Any], events: list[Event] | None = None, **kwargs: Any) -> Session:
    agent = create_agent(lambda ctx: agent_config, name="writer")
    harness = await init(
        agent,
        session_store=kwargs.pop("store", MemorySessionStore()),
        on_event=events.append if events is not None else None,
        **kwargs,
    )
    return await harness.session("main")


def of(events: list[Event], type: str) -> list[Event]:
    return [e for e in events if e.type == type]


# -- isolation -------------------------------------------------------------------------------------


async def test_a_direct_task_runs_in_an_isolated_child_and_the_parent_records_only_its_result() -> None:
    child_seen: list[ModelRequest] = []

    def child(request: ModelRequest) -> str:
        child_seen.append(request)
        return "VERDICT: one error"

    def parent(request: ModelRequest) -> str:
        return "noted: the launch code is 4417"

    reviewer = define_agent_profile(
        name="reviewer", description="Reviews.", instructions="Review.", model=FunctionModel(child)
    )
    store = MemorySessionStore()
    session = await start({"model": FunctionModel(parent), "subagents": [reviewer]}, store=store)
    await session.prompt("Remember: the launch code is 4417.")
    before = session.history

    result = await session.task("Review this draft: the sky is green.", agent="reviewer")

    assert result.text == "VERDICT: one error"
    (request,) = child_seen
    assert [text_of(m) for m in request.messages] == ["Review this draft: the sky is green."]
    assert "4417" not in repr(request)  # the child never sees the parent's conversation
    # The parent gets the delegated input and the result, nothing of the child's inner messages.
    added = session.history[len(before) :]
    assert session.history[: len(before)] == before
    assert [type(m) for m in added] == [UserMessage, AssistantMessage]
    assert "Review this draft: the sky is green." in text_of(added[0]) and "'reviewer'" in text_of(added[0])
    assert text_of(added[1]).endswith("VERDICT: one error")
    assert await store.load(session.key) == session.history  # persisted too
    # The child's own conversation is stored under the parent's agent and instance.
    child_key = SessionKey("writer", "default", f"task:{result.operation_id}")
    assert [text_of(m) for m in await store.load(child_key)] == [
        "Review this draft: the sky is green.",
        "VERDICT: one error",
    ]


async def test_a_task_started_by_the_model_leaves_only_the_tool_call_and_its_result() -> None:
    def child(request: ModelRequest) -> ModelResponse | str:
        found = results_in(request)
        return f"checked: {found[0].content}" if found else calls(("k1", "lookup", {"query": "sky"}))

    @define_tool
    def lookup(query: str) -> str:
        """Look up."""
        return f"{query} is blue"

    reviewer = define_agent_profile(
        name="reviewer", description="Reviews.", model=FunctionModel(child), tools=[lookup]
    )
    parent = tool_then_answer(
        "task", {"agent": "reviewer", "prompt": "Is the sky green?"}, lambda r: f"final: {r[0].content}"
    )
    session = await start({"model": FunctionModel(parent), "subagents": [reviewer]})
    result = await session.prompt("Write about the sky.")

    assert result.text == "final: checked: sky is blue"
    history = session.history
    assert [type(m) for m in history] == [UserMessage, AssistantMessage, UserMessage, AssistantMessage]
    (call,) = [p for p in history[1].parts if isinstance(p, ToolCallPart)]
    assert call.name == "task"
    (tool_result,) = history[2].parts
    assert isinstance(tool_result, ToolResultPart) and tool_result.content == "checked: sky is blue"
    assert "lookup" not in repr(history)  # the child's own tool call stayed in the child


async def test_a_plain_task_runs_the_parents_config_in_a_fresh_context() -> None:
    seen: list[ModelRequest] = []

    @define_tool
    def search(query: str) -> str:
        """Search."""
        return query

    def model(request: ModelRequest) -> str:
        seen.append(request)
        return f"answer #{len(seen)}"

    session = await start({"model": FunctionModel(model), "instructions": "Be helpful.", "tools": [search]})
    await session.prompt("first question")
    result = await session.task("Look this up")
    assert result.text == "answer #2"
    request = seen[1]
    assert [text_of(m) for m in request.messages] == ["Look this up"]
    assert request.instructions == "Be helpful." and [t.name for t in request.tools] == ["search"]


class Verdict(BaseModel):
    ok: bool
    errors: list[str]


async def test_a_typed_task_returns_validated_output() -> None:
    def child(request: ModelRequest) -> str:
        return '{"ok": false, "errors": ["the sky is not green"]}'

    events: list[Event] = []
    reviewer = define_agent_profile(name="reviewer", model=FunctionModel(child))
    session = await start({"model": FunctionModel(child), "subagents": [reviewer]}, events)
    result = await session.task("Review it.", agent="reviewer", result=Verdict)
    assert result.output == Verdict(ok=False, errors=["the sky is not green"])
    (end,) = of(events, "task_end")
    assert end.data["result"] == {"ok": False, "errors": ["the sky is not green"]}
    assert end.data["status"] == "completed"


# -- correlation -----------------------------------------------------------------------------------


async def test_child_events_nest_under_the_parent_operation_on_the_same_bus() -> None:
    reviewer = define_agent_profile(
        name="reviewer", description="Reviews.", model=FunctionModel(lambda r: "fine")
    )
    parent = tool_then_answer("task", {"agent": "reviewer", "prompt": "check"}, lambda r: "done")
    events: list[Event] = []
    run_id = "workflow:demo:01J0000000000000000000000"
    session = await start({"model": FunctionModel(parent), "subagents": [reviewer]}, events, run_id=run_id)
    result = await session.prompt("go")

    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))  # one sequence
    assert {e.run_id for e in events} == {run_id}
    parent_op = result.operation_id
    (task_start,) = of(events, "task_start")
    (task_end,) = of(events, "task_end")
    task_op = task_start.data["task_operation_id"]
    for event in (task_start, task_end):  # on the parent's correlation
        assert (event.session_id, event.operation_id, event.data["agent"]) == ("main", parent_op, "reviewer")
    assert task_end.data["task_operation_id"] == task_op and task_end.data["text"] == "fine"
    child = [e for e in events if e.operation_id == task_op]
    assert [e.type for e in child] == [
        "operation_start",
        "model_start",
        "text_delta",
        "model_end",
        "operation_end",
    ]
    assert {(e.session_id, e.parent_id, e.agent, e.instance_id) for e in child} == {
        (f"task:{task_op}", parent_op, "writer", "default")
    }
    assert child[0].data["kind"] == "task"
    # The child's events come between task_start and task_end, all inside the parent operation.
    seqs = [e.seq for e in child]
    assert task_start.seq < min(seqs) and max(seqs) < task_end.seq
    parent_events = [e for e in events if e.operation_id == parent_op]
    assert parent_events[0].type == "operation_start" and parent_events[-1].type == "operation_end"
    assert all(e.parent_id is None for e in parent_events)


async def test_a_stream_yields_the_nested_task_events() -> None:
    reviewer = define_agent_profile(name="reviewer", model=FunctionModel(lambda r: "fine"))
    parent = tool_then_answer("task", {"agent": "reviewer", "prompt": "check"}, lambda r: "done")
    session = await start({"model": FunctionModel(parent), "subagents": [reviewer]})
    items = [item async for item in session.stream("go")]
    events = [i for i in items if isinstance(i, Event)]
    result = items[-1]
    assert isinstance(result, PromptResult) and result.text == "done"
    child_deltas = [e for e in events if e.type == "text_delta" and (e.session_id or "").startswith("task:")]
    assert [e.data["text"] for e in child_deltas] == ["fine"]
    assert all(e.parent_id == result.operation_id for e in child_deltas)


# -- the model's task tool -------------------------------------------------------------------------


async def test_the_task_tool_lists_each_profile_with_its_description() -> None:
    seen: list[ModelRequest] = []

    def parent(request: ModelRequest) -> str:
        seen.append(request)
        return "ok"

    profiles = [
        define_agent_profile(name="reviewer", description="Reviews a draft for factual errors."),
        define_agent_profile(name="researcher", description="Finds sources."),
    ]
    session = await start({"model": FunctionModel(parent), "subagents": profiles})
    await session.prompt("hi")
    (tool,) = seen[0].tools
    assert tool.name == "task"
    assert "- reviewer: Reviews a draft for factual errors." in tool.description
    assert "- researcher: Finds sources." in tool.description
    assert tool.parameters["properties"]["agent"]["enum"] == ["reviewer", "researcher"]
    assert tool.parameters["required"] == ["agent", "prompt"]
    assert session.harness.task_tool is session.harness.task_tool  # built once per harness


async def test_no_task_tool_without_subagents_and_a_clash_with_a_user_tool_is_an_error() -> None:
    session = await start({"model": FunctionModel(lambda r: "ok")})
    assert session.harness.task_tool is None

    @define_tool
    def task(what: str) -> str:
        """Mine."""
        return what

    # The clash is found when the instance is made, before any prompt.
    with pytest.raises(ConfigError, match="a tool is named 'task', the name of the built-in tool"):
        await start(
            {
                "model": FunctionModel(lambda r: "ok"),
                "tools": [task],
                "subagents": [define_agent_profile(name="a")],
            }
        )


async def test_an_unknown_subagent_from_the_model_comes_back_as_a_tool_error() -> None:
    parent = tool_then_answer("task", {"agent": "editor", "prompt": "x"}, lambda r: r[0].content)
    session = await start(
        {"model": FunctionModel(parent), "subagents": [define_agent_profile(name="reviewer")]}
    )
    result = await session.prompt("go")
    assert "no subagent 'editor'; available: reviewer" in result.text
    assert session.history[2].parts[0].is_error  # type: ignore[union-attr]


async def test_tasks_of_one_turn_run_concurrently() -> None:
    """Each child waits for the other's signal: this finishes only if both run at the same time."""
    ready = {"a": anyio.Event(), "b": anyio.Event()}

    @define_tool
    async def meet(me: str, other: str) -> str:
        """Signal, then wait for the other task."""
        ready[me].set()
        await ready[other].wait()
        return f"{me} met {other}"

    def child(me: str, other: str) -> FunctionModel:
        return FunctionModel(tool_then_answer("meet", {"me": me, "other": other}, lambda r: r[0].content))

    profiles = [
        define_agent_profile(name="a", model=child("a", "b"), tools=[meet]),
        define_agent_profile(name="b", model=child("b", "a"), tools=[meet]),
    ]

    def parent(request: ModelRequest) -> ModelResponse | str:
        found = results_in(request)
        if found:
            return " | ".join(r.content for r in found)
        return calls(
            ("t1", "task", {"agent": "a", "prompt": "go"}), ("t2", "task", {"agent": "b", "prompt": "go"})
        )

    session = await start({"model": FunctionModel(parent), "subagents": profiles})
    with anyio.fail_after(5):
        result = await session.prompt("run both")
    assert result.text == "a met b | b met a"


async def test_a_user_tool_can_start_a_task_inside_the_running_operation() -> None:
    events: list[Event] = []

    @define_tool
    async def delegate(ctx: ToolContext, what: str) -> str:
        """Delegate."""
        res = await ctx.session.task(what, agent="helper")
        return str(res.text)

    helper = define_agent_profile(name="helper", model=FunctionModel(lambda r: "helped"))
    parent = tool_then_answer("delegate", {"what": "help"}, lambda r: r[0].content)
    session = await start(
        {"model": FunctionModel(parent), "tools": [delegate], "subagents": [helper]}, events
    )
    with anyio.fail_after(5):  # it joins the operation instead of waiting for the session's turn
        result = await session.prompt("go")
    assert result.text == "helped"
    (task_start,) = of(events, "task_start")
    assert task_start.operation_id == result.operation_id
    assert of(events, "operation_start")[1].parent_id == result.operation_id


# -- depth -----------------------------------------------------------------------------------------


async def test_depth_is_limited() -> None:
    depths: list[int] = []
    errors: list[BaseException] = []

    @define_tool
    async def dig(ctx: ToolContext) -> str:
        """Start a deeper task."""
        depths.append(ctx.session.harness.depth)
        try:
            await ctx.session.task("deeper")
        except TaskDepthError as exc:
            errors.append(exc)
            raise
        return "dug"

    session = await start(
        {
            "model": FunctionModel(tool_then_answer("dig", {}, lambda r: "ok")),
            "tools": [dig],
            "max_task_depth": 2,
        }
    )
    await session.prompt("dig")
    assert depths == [0, 1, 2]  # the task at depth 3 was refused
    (error,) = errors
    assert "a task at depth 3 exceeds max_task_depth=2" in str(error)


async def test_max_task_depth_zero_forbids_tasks_and_hides_the_tool() -> None:
    session = await start(
        {
            "model": FunctionModel(lambda r: "ok"),
            "subagents": [define_agent_profile(name="a")],
            "max_task_depth": 0,
        }
    )
    assert session.harness.task_tool is None
    with pytest.raises(TaskDepthError):
        await session.task("x", agent="a")


async def test_the_task_tool_is_not_offered_at_the_depth_limit() -> None:
    tools_seen: dict[str, list[str]] = {}

    def model(name: str, answer: Respond) -> FunctionModel:
        def respond(request: ModelRequest) -> ModelResponse | str:
            tools_seen.setdefault(name, [t.name for t in request.tools])
            return answer(request)

        return FunctionModel(respond)

    leaf = define_agent_profile(name="leaf", model=model("leaf", lambda r: "leaf done"))
    middle = define_agent_profile(
        name="middle",
        subagents=[leaf],
        model=model(
            "middle", tool_then_answer("task", {"agent": "leaf", "prompt": "x"}, lambda r: r[0].content)
        ),
    )
    root = model("root", tool_then_answer("task", {"agent": "middle", "prompt": "x"}, lambda r: r[0].content))
    session = await start({"model": root, "subagents": [middle], "max_task_depth": 1})
    result = await session.prompt("go")
    assert tools_seen["root"] == ["task"]
    assert tools_seen["middle"] == []  # at depth 1 = max_task_depth: no task tool offered
    assert result.text == "error: unknown tool 'task'; available tools: none"  # what middle got back


# -- usage -----------------------------------------------------------------------------------------


async def test_child_usage_rolls_up_into_the_parent_and_the_run_total_counts_it_once() -> None:
    def child(request: ModelRequest) -> ModelResponse:
        return text("child done", Usage(100, 10, requests=1))

    def parent(request: ModelRequest) -> ModelResponse:
        if results_in(request):
            return text("parent done", Usage(7, 1, requests=1))
        return calls(
            ("t1", "task", {"agent": "helper", "prompt": "one"}),
            ("t2", "task", {"agent": "helper", "prompt": "two"}),
            usage=Usage(5, 2, requests=1),
        )

    events: list[Event] = []
    helper = define_agent_profile(name="helper", model=FunctionModel(child))
    session = await start({"model": FunctionModel(parent), "subagents": [helper]}, events)
    result = await session.prompt("go")
    assert result.usage == Usage(5 + 7 + 200, 2 + 1 + 20, requests=4)
    total = Usage()
    for event in of(events, "model_end"):
        total = total + Usage(**event.data["usage"])
    assert total == result.usage  # the run sums model_end events: no double count
    assert [e.data["usage"]["input_tokens"] for e in of(events, "task_end")] == [100, 100]
    assert of(events, "operation_end")[-1].data["usage"] == result.usage.to_dict()


async def test_a_failed_task_still_reports_and_rolls_up_what_it_spent() -> None:
    def child(request: ModelRequest) -> ModelResponse:
        if results_in(request):
            raise RuntimeError("provider exploded")
        return calls(("k1", "noop", {}), usage=Usage(40, 4, requests=1))

    @define_tool
    def noop() -> str:
        """Nothing."""
        return "ok"

    def parent(request: ModelRequest) -> ModelResponse:
        found = results_in(request)
        if found:
            return text(found[0].content, Usage(1, 1, requests=1))
        return calls(("t1", "task", {"agent": "helper", "prompt": "x"}), usage=Usage(2, 2, requests=1))

    events: list[Event] = []
    helper = define_agent_profile(name="helper", model=FunctionModel(child), tools=[noop])
    session = await start({"model": FunctionModel(parent), "subagents": [helper]}, events)
    result = await session.prompt("go")
    assert "RuntimeError: provider exploded" in result.text
    (end,) = of(events, "task_end")
    assert end.data["status"] == "failed" and end.data["error"]["type"] == "RuntimeError"
    assert end.data["usage"]["input_tokens"] == 40
    assert result.usage == Usage(43, 7, requests=3)


# -- abort -----------------------------------------------------------------------------------------


async def test_aborting_the_parent_aborts_its_running_tasks() -> None:
    entered = anyio.Event()
    cancelled: list[bool] = []

    @define_tool
    async def wait_forever() -> str:
        """Block."""
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(True)
        return "never"

    events: list[Event] = []
    slow = define_agent_profile(
        name="slow",
        model=FunctionModel(tool_then_answer("wait_forever", {}, lambda r: "?")),
        tools=[wait_forever],
    )
    parent = tool_then_answer("task", {"agent": "slow", "prompt": "wait"}, lambda r: "?")
    session = await start({"model": FunctionModel(parent), "subagents": [slow]}, events)
    outcome: list[BaseException] = []

    async def run() -> None:
        try:
            await session.prompt("go")
        except AbortedError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await entered.wait()
            assert await session.abort("user pressed stop")
    assert cancelled == [True] and len(outcome) == 1
    (end,) = of(events, "task_end")
    assert end.data["status"] == "cancelled"
    child_end = [e for e in of(events, "operation_end") if e.operation_id == end.data["task_operation_id"]]
    assert child_end[0].data["status"] == "cancelled"
    assert of(events, "operation_end")[-1].data["status"] == "aborted"
    last = session.history[-1]  # the parent's history stays valid: the task call got an error result
    assert isinstance(last, UserMessage) and last.parts[0].is_error  # type: ignore[union-attr]


async def test_aborting_a_direct_task_records_nothing_in_the_parent() -> None:
    entered = anyio.Event()

    async def hang(request: ModelRequest) -> str:
        entered.set()
        await anyio.sleep_forever()
        return "never"

    events: list[Event] = []
    slow = define_agent_profile(name="slow", model=FunctionModel(hang))
    session = await start({"model": FunctionModel(lambda r: "ok"), "subagents": [slow]}, events)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with pytest.raises(AbortedError):
                    await session.task("wait", agent="slow")

            tg.start_soon(run)
            await entered.wait()
            assert session.operation_id is not None  # a direct task is an operation of the parent
            assert await session.abort()
    assert session.history == []
    parent_ops = [e for e in events if e.session_id == "main"]
    assert [e.type for e in parent_ops] == [
        "operation_start",
        "task_start",
        "task_end",
        "abort",
        "operation_end",
    ]
    assert parent_ops[0].data["kind"] == "task" and parent_ops[-1].data["status"] == "aborted"


async def test_a_direct_task_waits_its_turn_behind_a_running_prompt() -> None:
    entered = anyio.Event()
    release = anyio.Event()
    order: list[str] = []

    @define_tool
    async def hold() -> str:
        """Hold the operation open."""
        entered.set()
        await release.wait()
        order.append("prompt tool done")
        return "held"

    def child(request: ModelRequest) -> str:
        order.append("task ran")
        return "task result"

    helper = define_agent_profile(name="helper", model=FunctionModel(child))
    session = await start(
        {
            "model": FunctionModel(tool_then_answer("hold", {}, lambda r: "prompt done")),
            "tools": [hold],
            "subagents": [helper],
        }
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.prompt, "hold on")
            await entered.wait()
            tg.start_soon(partial(session.task, "help", agent="helper"))
            await anyio.sleep(0.05)
            assert order == []  # the task is queued, not running beside the prompt
            release.set()
    assert order == ["prompt tool done", "task ran"]
    assert [text_of(m) for m in session.history][-1].endswith("task result")


async def test_a_task_started_by_the_task_tool_names_its_tool_call() -> None:
    """task_start carries the call_id of the `task` tool call, so a UI (or the OTel observer) links
    the task to the call that started it; a task started from code has none."""
    reviewer = define_agent_profile(
        name="reviewer", description="Reviews.", model=FunctionModel(lambda r: "ok")
    )
    parent = tool_then_answer("task", {"agent": "reviewer", "prompt": "Check."}, lambda r: "done")
    events: list[Event] = []
    session = await start({"model": FunctionModel(parent), "subagents": [reviewer]}, events)
    await session.prompt("Go.")
    (tool_start,) = [e for e in events if e.type == "tool_start"]
    (task_start,) = [e for e in events if e.type == "task_start"]
    assert task_start.data["call_id"] == tool_start.data["call_id"]

    await session.task("Check again.", agent="reviewer")
    direct = [e for e in events if e.type == "task_start"][-1]
    assert "call_id" not in direct.data
