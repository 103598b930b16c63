"""The test project: a resumable workflow with two prompts, concurrent tool calls (one idempotent
lookup, one booking with a side effect), ``ctx.step`` and ``ctx.uuid``. ``gate(name)`` marks each
step boundary in a trace file and, when ``KILL_AT`` names it, signals the parent and blocks until
it is killed."""

from __future__ import annotations

TRIP = '''\
import os
import pathlib
import time

from pyflue import create_agent, define_tool
from pyflue.journal import idempotent
from pyflue.models.base import ModelResponse, Usage
from pyflue.models.messages import TextPart, ToolCallPart, ToolResultPart
from pyflue.models.testing import FunctionModel

resumable = True
DIR = pathlib.Path(os.environ["RESUME_DIR"])


def note(file, line):
    with open(DIR / file, "a") as f:
        f.write(line + "\\n")


def gate(name):
    note("trace", name)
    if os.environ.get("KILL_AT") == name:
        (DIR / "ready").write_text(name)
        time.sleep(3600)


def answer(request):
    last = request.messages[-1]
    results = [p for p in last.parts if isinstance(p, ToolResultPart)]
    if results:
        key = "results"
        reply = ModelResponse([TextPart("done: " + "; ".join(r.content for r in results))], Usage(5, 3))
    else:
        item = last.parts[0].text.split()[-1]
        key = "ask " + item
        reply = ModelResponse(
            [
                ToolCallPart("c1-" + item, "lookup", {"item": item}),
                ToolCallPart("c2-" + item, "book", {"item": item}),
            ],
            Usage(4, 2),
            "tool_calls",
        )
    note("model_calls", key + " @" + str(len(request.messages)))
    gate("model:" + key + ":" + str(len(request.messages)))
    return reply


@define_tool
async def book(item: str) -> str:
    """Book an item (a side effect: it must not happen twice)."""
    gate("book:" + item + ":before")
    note("side_effects", "book " + item)
    gate("book:" + item + ":after")
    return "ref-" + item


@idempotent
async def lookup_price(item: str) -> str:
    """Look up a price (safe to repeat)."""
    note("lookups", item)
    gate("lookup:" + item)
    return "price-" + item


lookup = define_tool(name="lookup")(lookup_price)
agent = create_agent(lambda ctx: {"model": FunctionModel(answer), "tools": [lookup, book]})


def confirm():
    note("confirms", "confirm")
    gate("confirm")
    return {"code": "C-42"}


async def run(ctx):
    harness = await ctx.init(agent)
    session = await harness.session()
    first = await session.prompt("book PLACE")
    gate("between:1")
    code = await ctx.step("confirm", confirm, idempotent=True)
    gate("between:2")
    second = await session.prompt("book train")
    stamp = await ctx.uuid()
    note("uuids", str(stamp))
    gate("between:3")
    return {"first": first.text, "code": code, "second": second.text, "uuid": str(stamp),
            "tokens": second.usage.input_tokens}
'''


def trip(place: str = "hotel") -> str:
    return TRIP.replace("PLACE", place)


TRAVEL = '''\
import os
import pathlib
import time

from pyflue import create_agent, define_agent_profile, define_tool

resumable = True
DIR = pathlib.Path(os.environ["RESUME_DIR"])


def note(file, line):
    with open(DIR / file, "a") as f:
        f.write(line + "\\n")


def gate(name):
    note("trace", name)
    if os.environ.get("KILL_AT") == name:
        (DIR / "ready").write_text(name)
        time.sleep(3600)


@define_tool(idempotent=True)
async def verify(item: str) -> str:
    """Verify a booking (safe to repeat)."""
    note("verifies", item)
    gate("verify:" + item + ":after")
    return "ok-" + item


@define_tool
async def book(item: str) -> str:
    """Book an item (a side effect: it must not happen twice)."""
    note("side_effects", "book " + item)
    gate("book:" + item + ":after")
    return "ref-" + item


@define_tool(name="lookup", idempotent=True)
async def lookup_price(item: str) -> str:
    """Look up a price (safe to repeat)."""
    note("lookups", item)
    gate("lookup:" + item + ":after")
    return "price-" + item


checker = define_agent_profile(
    name="checker", description="Checks a booking.", instructions="You check bookings.", tools=[verify]
)
agent = create_agent(
    lambda ctx: {"model": "openai/gpt-4.1-mini", "tools": [lookup_price, book], "subagents": [checker]}
)


def confirm():
    note("confirms", "confirm")
    return {"code": "C-42"}


async def run(ctx):
    session = await (await ctx.init(agent)).session()
    first = await session.prompt("book hotel")
    gate("between:1")
    code = await ctx.step("confirm", confirm)
    return {"first": first.text, "code": code}
'''
