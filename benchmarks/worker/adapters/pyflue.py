"""PyFlue (this repository) on its own offline ``FunctionModel``.

A conversation is a ``Session`` of one harness (in-memory session store, the default); streaming
counts the ``text_delta`` events of ``session.stream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pyflue import define_tool, init
from pyflue.models.base import ModelRequest, ModelResponse
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel

from .base import ANSWER, DELTA, INSTRUCTIONS, WEATHER_ARGS, Kind


def _answer(request: ModelRequest) -> str:
    return ANSWER


def _tool_then_answer(request: ModelRequest) -> ModelResponse | str:
    last = request.messages[-1]
    if isinstance(last, UserMessage) and any(isinstance(p, ToolResultPart) for p in last.parts):
        return ANSWER
    return ModelResponse([ToolCallPart("c1", "get_weather", dict(WEATHER_ARGS))], finish_reason="tool_calls")


@define_tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


class Conversation:
    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session

    async def prompt(self, text: str) -> str:
        return str((await self.session.prompt(text)).text)

    async def stream(self, text: str) -> int:
        count = 0
        async for event in self.session.stream(text):  # events, then the PromptResult
            if getattr(event, "type", None) == "text_delta":
                count += 1
        return count

    def retained(self) -> object:
        return self.session


class Agent:
    def __init__(self, harness: Any) -> None:
        self.harness = harness

    async def conversation(self, key: str) -> Conversation:
        return Conversation(await self.harness.session(key))


class PyFlueAdapter:
    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        tools: list[Any] = []
        if kind == "stream":

            async def stream(request: ModelRequest) -> AsyncIterator[str]:
                for _ in range(deltas):
                    yield DELTA

            model = FunctionModel(stream_function=stream)
        elif kind == "tool":
            model, tools = FunctionModel(_tool_then_answer), [get_weather]
        else:
            model = FunctionModel(_answer)
        harness = await init(model=model, tools=tools, instructions=INSTRUCTIONS, id=f"bench-{kind}")
        return Agent(harness)


def create(options: dict[str, str]) -> PyFlueAdapter:
    return PyFlueAdapter()
