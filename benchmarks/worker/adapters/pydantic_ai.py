"""pydantic-ai on its own ``FunctionModel`` (async functions: a sync one would run in a thread).

A conversation is the message list ``result.all_messages()``, passed back as ``message_history``.
Streaming reads ``stream_text(delta=True, debounce_by=None)`` so every delta reaches the caller,
as PyFlue's ``session.stream`` delivers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai import Agent as PAgent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from .base import ANSWER, DELTA, INSTRUCTIONS, WEATHER_ARGS, Kind


async def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(ANSWER)])


async def _tool_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
        return ModelResponse(parts=[TextPart(ANSWER)])
    return ModelResponse(parts=[ToolCallPart("get_weather", dict(WEATHER_ARGS), tool_call_id="c1")])


async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


class Conversation:
    __slots__ = ("_agent", "history")

    def __init__(self, agent: PAgent[None, str]) -> None:
        self._agent = agent
        self.history: list[ModelMessage] | None = None

    async def prompt(self, text: str) -> str:
        result = await self._agent.run(text, message_history=self.history)
        self.history = result.all_messages()
        return result.output

    async def stream(self, text: str) -> int:
        count = 0
        async with self._agent.run_stream(text, message_history=self.history) as run:
            async for _ in run.stream_text(delta=True, debounce_by=None):
                count += 1
        self.history = run.all_messages()
        return count

    def retained(self) -> object:
        return self.history


class Agent:
    def __init__(self, agent: PAgent[None, str]) -> None:
        self._agent = agent

    async def conversation(self, key: str) -> Conversation:
        return Conversation(self._agent)


class PydanticAIAdapter:
    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        model: FunctionModel
        tools: list[Any] = []
        if kind == "stream":

            async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
                for _ in range(deltas):
                    yield DELTA

            model = FunctionModel(stream_function=stream)
        elif kind == "tool":
            model, tools = FunctionModel(_tool_then_answer), [get_weather]
        else:
            model = FunctionModel(_answer)
        return Agent(PAgent(model, instructions=INSTRUCTIONS, tools=tools))


def create(options: dict[str, str]) -> PydanticAIAdapter:
    return PydanticAIAdapter()
