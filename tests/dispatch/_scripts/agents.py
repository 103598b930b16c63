"""Agent files the crash tests copy into their temporary project (``agents/<name>.py``)."""

from __future__ import annotations

#: ``echo``: answers ``echo: <input>`` after ``ECHO_DELAY`` seconds (widens the window a kill hits).
ECHO = """
import os

import anyio

from pyflue import create_agent
from pyflue.models.messages import text_of
from pyflue.models.testing import FunctionModel


async def reply(request):
    await anyio.sleep(float(os.environ.get("ECHO_DELAY", "0")))
    return f"echo: {text_of(request.messages[-1])}"


default = create_agent(lambda ctx: {"model": FunctionModel(reply)})
"""

#: ``careful``: its first model call asks for ``charge``, a tool that appends a line to
#: ``charges.txt`` in the project and then sleeps for a minute; once the model sees a tool
#: result it answers ``saw: <that result>``.
CAREFUL = '''
from pathlib import Path

import anyio

from pyflue import create_agent, define_tool
from pyflue.models.base import ModelResponse
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel

CHARGES = Path(__file__).resolve().parent.parent / "charges.txt"


@define_tool
async def charge() -> str:
    """Charge the card once."""
    with CHARGES.open("a") as file:
        file.write("charged\\n")
    await anyio.sleep(60)
    return "charged"


def reply(request):
    results = [
        part.content
        for message in request.messages
        if isinstance(message, UserMessage)
        for part in message.parts
        if isinstance(part, ToolResultPart)
    ]
    if results:
        return "saw: " + " | ".join(results)
    return ModelResponse([ToolCallPart("call-1", "charge", {})])


default = create_agent(lambda ctx: {"model": FunctionModel(reply), "tools": [charge]})
'''
