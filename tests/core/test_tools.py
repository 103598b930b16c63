"""define_tool: schemas from signatures, docstrings and pydantic models; validation; ToolContext;
sync tools off the event loop; timeouts; and how tool failures reach the model inside the turn loop."""

from __future__ import annotations

import base64
import json
import threading
import time
import warnings
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import BaseModel, Field

from pyflue import Tool, ToolContext, define_tool, init
from pyflue.errors import ConfigError, ToolError, ToolTimeoutError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import TextPart, ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel
from pyflue.stores.memory import MemorySessionStore


def call(name: str, args: dict[str, Any], call_id: str = "c1") -> ModelResponse:
    return ModelResponse([ToolCallPart(call_id, name, args)], Usage(requests=1), "tool_calls")


def last_results(request: ModelRequest) -> list[ToolResultPart]:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return [p for p in last.parts if isinstance(p, ToolResultPart)]


def one_call_then_echo(name: str, args: dict[str, Any]) -> tuple[FunctionModel, list[ModelRequest]]:
    """A model that calls ``name(**args)`` once, then answers with the tool result's text."""
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        seen.append(request)
        if len(seen) == 1:
            return call(name, args)
        return "got: " + last_results(request)[0].content

    return FunctionModel(respond), seen


# -- schemas ---------------------------------------------------------------------------------------


def test_decorator_builds_schema_from_hints_and_docstring() -> None:
    @define_tool
    async def lookup_order(order_id: str, verbose: bool = False) -> dict[str, Any]:
        """Look an order up by id.

        Args:
            order_id: The order's id, e.g. "7".
            verbose: Include the order's lines,
                one per item.
        """
        return {}

    assert isinstance(lookup_order, Tool)
    assert lookup_order.name == "lookup_order"
    assert lookup_order.description == "Look an order up by id."
    assert lookup_order.takes_ctx is False
    assert lookup_order.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": 'The order\'s id, e.g. "7".'},
            "verbose": {
                "type": "boolean",
                "default": False,
                "description": "Include the order's lines, one per item.",
            },
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }
    definition = lookup_order.definition
    assert (definition.name, definition.description) == ("lookup_order", "Look an order up by id.")


def test_sphinx_and_numpy_docstrings() -> None:
    def sphinx(city: str, days: int) -> str:
        """Forecast.

        :param city: City name.
        :param int days: How many days ahead.
        """
        return city

    def numpy(city: str, days: int = 1) -> str:
        """Forecast the weather.

        Parameters
        ----------
        city : str
            City name: the one to forecast.
        days : int, optional
            How many days
            ahead.

        Returns
        -------
        str
            The forecast.
        """
        return city

    props = define_tool(sphinx).parameters["properties"]
    assert props["city"]["description"] == "City name."
    assert props["days"]["description"] == "How many days ahead."
    tool = define_tool(numpy)
    assert tool.description == "Forecast the weather."  # no "Returns" section, no underline
    props = tool.parameters["properties"]
    assert props["city"]["description"] == "City name: the one to forecast."  # not "str City name..."
    assert props["days"]["description"] == "How many days ahead."


def test_returns_and_raises_sections_stay_out_of_the_description() -> None:
    def google(a: int) -> str:
        """Do a thing.

        Longer explanation.

        Args:
            a (int): First: the one.

        Returns:
            The result, as text.

        Raises:
            ValueError: when bad.
        """
        return str(a)

    tool = define_tool(google)
    assert tool.description == "Do a thing.\n\nLonger explanation."
    assert tool.parameters["properties"]["a"]["description"] == "First: the one."


def test_overrides_and_function_form_with_json_schema() -> None:
    @define_tool(name="find", description="Find things.", timeout=3)
    def finder(q: str) -> str:
        return q

    assert (finder.name, finder.description, finder.timeout) == ("find", "Find things.", 3)

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = define_tool("weather", lambda city: f"sunny in {city}", description="Weather.", parameters=schema)
    assert tool.name == "weather"
    assert tool.parameters == schema
    assert tool.definition.parameters is schema


async def test_function_form_json_schema_is_checked_before_the_call() -> None:
    calls: list[dict[str, Any]] = []

    async def execute(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "ok"

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    tool = define_tool("weather", execute, parameters=schema)
    assert await tool.call({"city": "Oslo", "days": 2}) == "ok"
    with pytest.raises(ToolError, match="missing required city"):
        await tool.call({"days": 2})
    with pytest.raises(ToolError, match="days must be integer"):
        await tool.call({"city": "Oslo", "days": "two"})
    with pytest.raises(ToolError, match="days must be integer"):
        await tool.call({"city": "Oslo", "days": True})  # bool is not an integer in JSON schema
    with pytest.raises(ToolError, match="unexpected extra"):
        await tool.call({"city": "Oslo", "extra": 1})
    assert calls == [{"city": "Oslo", "days": 2}]


class Opaque:
    """Not a pydantic-compatible type."""


class Address(BaseModel):
    street: str
    zip: Annotated[str, Field(pattern=r"^\d{5}$")]


class Shipment(BaseModel):
    """Ship a parcel."""

    weight_kg: float = Field(gt=0, description="Parcel weight.")
    to: Address


async def test_pydantic_model_as_parameters() -> None:
    got: list[dict[str, Any]] = []

    def ship(weight_kg: float, to: Address) -> str:
        got.append({"weight_kg": weight_kg, "to": to})
        return "shipped"

    tool = define_tool("ship", ship, parameters=Shipment)
    schema = tool.parameters
    assert "title" not in schema
    assert schema["properties"]["weight_kg"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Parcel weight.",
    }
    assert schema["properties"]["to"] == {"$ref": "#/$defs/Address"}
    assert set(schema["$defs"]["Address"]["properties"]) == {"street", "zip"}
    assert "title" not in schema["$defs"]["Address"]

    assert await tool.call({"weight_kg": "2.5", "to": {"street": "Main", "zip": "12345"}}) == "shipped"
    assert got == [{"weight_kg": 2.5, "to": Address(street="Main", zip="12345")}]
    with pytest.raises(ToolError, match=r"to\.zip: String should match pattern"):
        await tool.call({"weight_kg": 1, "to": {"street": "Main", "zip": "x"}})
    with pytest.raises(ToolError, match="weight_kg: Input should be greater than 0"):
        await tool.call({"weight_kg": 0, "to": {"street": "Main", "zip": "12345"}})


async def test_pydantic_model_typed_parameter_arrives_as_the_model() -> None:
    received: list[Any] = []

    @define_tool
    async def send(address: Address, mode: Literal["air", "sea"] = "sea") -> str:
        """Send to an address."""
        received.append((address, mode))
        return "sent"

    assert send.parameters["properties"]["mode"]["enum"] == ["air", "sea"]
    await send.call({"address": {"street": "Elm", "zip": "54321"}, "mode": "air"})
    assert received == [(Address(street="Elm", zip="54321"), "air")]
    with pytest.raises(ToolError, match="mode: Input should be 'air' or 'sea'"):
        await send.call({"address": {"street": "Elm", "zip": "54321"}, "mode": "rail"})
    with pytest.raises(ToolError, match="bogus: Extra inputs are not permitted"):
        await send.call({"address": {"street": "Elm", "zip": "54321"}, "bogus": 1})
    with pytest.raises(ToolError, match="not a JSON object"):
        await send.call({"__raw__": "{not json"})


def test_tool_context_first_parameter_is_not_in_the_schema() -> None:
    @define_tool
    async def by_type(ctx: ToolContext, q: str) -> str:
        """Typed ctx."""
        return q

    @define_tool
    def by_name(ctx, q: str) -> str:  # type: ignore[no-untyped-def]
        """Bare ctx by name."""
        return q

    for tool in (by_type, by_name):
        assert tool.takes_ctx is True
        assert list(tool.parameters["properties"]) == ["q"]
        assert tool.parameters["required"] == ["q"]


def test_bad_definitions_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        define_tool("has space", lambda: None)
    with pytest.raises(ConfigError, match="needs the function"):
        define_tool("name")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="expects a function"):
        define_tool(42)  # type: ignore[call-overload]

    def uses_opaque(thing: Opaque) -> None:
        return None

    with pytest.raises(ConfigError, match="'uses_opaque': cannot build a schema"):
        define_tool(uses_opaque)


def test_unresolvable_annotations_are_an_error_not_any() -> None:
    # This module uses `from __future__ import annotations`, so a class local to the test is a string
    # annotation nothing can resolve: it must not silently become an unchecked `Any` argument.
    class Local(BaseModel):
        n: int

    def uses_local(item: Local) -> int:
        return item.n

    with pytest.raises(ConfigError, match="cannot resolve the type 'Local' of parameter 'item'"):
        define_tool(uses_local)

    # An unresolvable return annotation plays no part; the parameters still resolve.
    def with_ctx(ctx: ToolContext, q: str) -> Local:
        raise AssertionError

    tool = define_tool(with_ctx)
    assert tool.takes_ctx is True
    assert list(tool.parameters["properties"]) == ["q"]


async def test_parameters_named_like_pydantic_attributes() -> None:
    def store(json: str, copy: int, schema: str, validate: bool = False) -> str:
        """Store a document."""
        return f"{json}|{copy}|{schema}|{validate}"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pydantic warning about our internal model reaches the user
        tool = define_tool(store)
    assert list(tool.parameters["properties"]) == ["json", "copy", "schema", "validate"]
    assert await tool.call({"json": "{}", "copy": 2, "schema": "public"}) == "{}|2|public|False"


def test_defining_a_tool_twice_returns_it() -> None:
    @define_tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert define_tool(ping) is ping


# -- running ---------------------------------------------------------------------------------------


async def test_tool_context_carries_the_call() -> None:
    contexts: list[ToolContext] = []

    @define_tool
    async def whoami(ctx: ToolContext) -> str:
        """Who is calling."""
        contexts.append(ctx)
        return ctx.call_id

    model, _ = one_call_then_echo("whoami", {})
    harness = await init(
        session_store=MemorySessionStore(),
        model=model,
        tools=[whoami],
        id="inst-1",
        name="helper",
        env={"REGION": "eu"},
    )
    session = await harness.session("s1")
    res = await session.prompt("who?")
    (ctx,) = contexts
    assert (ctx.agent, ctx.instance_id, ctx.session_id, ctx.call_id) == ("helper", "inst-1", "s1", "c1")
    assert ctx.operation_id == res.operation_id
    assert ctx.env == {"REGION": "eu"}
    assert ctx.session is session
    assert ctx.run_id is None
    assert res.text == "got: c1"


async def test_sync_tool_runs_in_a_worker_thread_without_blocking_the_loop() -> None:
    release = threading.Event()
    entered = anyio.Event()
    threads: list[int] = []

    @define_tool
    def blocking(seconds: float) -> str:
        """Block the calling thread until released."""
        threads.append(threading.get_ident())
        anyio.from_thread.run_sync(entered.set)
        # If this ran on the event loop thread, the releaser below could never run.
        assert release.wait(seconds), "the event loop was blocked by a sync tool"
        return "released"

    async def releaser() -> None:
        await entered.wait()
        await anyio.sleep(0.01)
        release.set()

    model, _ = one_call_then_echo("blocking", {"seconds": 5})
    session = await (await init(session_store=MemorySessionStore(), model=model, tools=[blocking])).session()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(releaser)
            res = await session.prompt("go")
    assert res.text == "got: released"
    assert threads and threads[0] != threading.get_ident()


@pytest.mark.parametrize("style", ["tool", "agent"])
async def test_timeouts_become_error_results(style: str) -> None:
    events: list[Any] = []
    release = threading.Event()

    async def slow_async() -> str:
        await anyio.sleep(10)
        return "never"

    def slow_sync() -> str:
        release.wait(10)
        return "never"

    per_tool = {"timeout": 0.05} if style == "tool" else {}
    tools = [
        define_tool("slow_async", slow_async, **per_tool),
        define_tool("slow_sync", slow_sync, **per_tool),
    ]
    agent_config = {"tool_timeout": 0.05} if style == "agent" else {}
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        seen.append(request)
        if len(seen) == 1:
            return ModelResponse(
                [ToolCallPart("a", "slow_async", {}), ToolCallPart("b", "slow_sync", {})],
                Usage(requests=1),
                "tool_calls",
            )
        return "gave up"

    harness = await init(
        session_store=MemorySessionStore(),
        model=FunctionModel(respond),
        tools=tools,
        on_event=events.append,
        **agent_config,
    )
    started = time.perf_counter()
    try:
        res = await (await harness.session()).prompt("go")
    finally:
        release.set()
    assert time.perf_counter() - started < 3
    assert res.text == "gave up"
    results = last_results(seen[1])
    assert [(r.call_id, r.is_error) for r in results] == [("a", True), ("b", True)]
    assert [r.content for r in results] == [
        "error: tool 'slow_async' timed out after 0.05s",
        "error: tool 'slow_sync' timed out after 0.05s",
    ]
    ends = [e.data for e in events if e.type == "tool_end"]
    assert {e["error"]["type"] for e in ends} == {"ToolTimeoutError"}
    assert all("result" not in e for e in ends)


async def test_direct_call_timeout_raises() -> None:
    async def slow() -> None:
        await anyio.sleep(5)

    tool = define_tool("slow", slow)
    with pytest.raises(ToolTimeoutError, match=r"'slow' timed out after 0\.02s"):
        await tool.call({}, timeout=0.02)


async def test_tool_results_are_text_or_json() -> None:
    class Point(BaseModel):
        x: int
        y: int

    @define_tool
    async def shapes() -> dict[str, Any]:
        """Structured result."""
        return {"p": Point(x=1, y=2), "tags": ("a", "b"), "n": None, "text": "é"}

    model, seen = one_call_then_echo("shapes", {})
    session = await (await init(session_store=MemorySessionStore(), model=model, tools=[shapes])).session()
    await session.prompt("go")
    (result,) = last_results(seen[1])
    assert result.content == '{"p":{"x":1,"y":2},"tags":["a","b"],"n":null,"text":"é"}'
    assert result.is_error is False


async def test_a_tool_returning_binary_data_succeeds() -> None:
    @define_tool
    async def read_file() -> dict[str, Any]:
        """Read a binary file."""
        return {"name": "a.png", "data": b"\x89PNG\xff\x00"}

    model, seen = one_call_then_echo("read_file", {})
    session = await (await init(session_store=MemorySessionStore(), model=model, tools=[read_file])).session()
    await session.prompt("go")
    (result,) = last_results(seen[1])
    assert result.is_error is False
    decoded = json.loads(result.content)
    assert decoded["name"] == "a.png"
    assert base64.urlsafe_b64decode(decoded["data"]) == b"\x89PNG\xff\x00"


async def test_plain_functions_are_wrapped_as_tools() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model, seen = one_call_then_echo("add", {"a": 2, "b": "3"})
    harness = await init(session_store=MemorySessionStore(), model=model, tools=[add])
    assert harness.tools["add"].description == "Add two numbers."
    res = await (await harness.session()).prompt("sum")
    assert res.text == "got: 5"
    assert seen[0].tools[0].parameters["required"] == ["a", "b"]


async def test_two_tools_with_one_name_are_rejected() -> None:
    def a() -> None:
        return None

    with pytest.raises(ConfigError, match="two tools are named 'same'"):
        await init(
            session_store=MemorySessionStore(),
            model="test",
            tools=[define_tool("same", a), define_tool("same", a)],
        )
    with pytest.raises(ConfigError, match="tools must be define_tool"):
        await init(session_store=MemorySessionStore(), model="test", tools=["not a tool"])


async def test_unknown_tool_goes_back_to_the_model() -> None:
    model, seen = one_call_then_echo("nope", {})

    @define_tool
    def real() -> str:
        """The one tool."""
        return "x"

    res = await (
        await (await init(session_store=MemorySessionStore(), model=model, tools=[real])).session()
    ).prompt("go")
    (result,) = last_results(seen[1])
    assert result.is_error
    assert result.content == "error: unknown tool 'nope'; available tools: real"
    assert res.text == "got: " + result.content
    assert isinstance(seen[1].messages[-1].parts[0], ToolResultPart)
    assert isinstance(seen[0].messages[0].parts[0], TextPart)
