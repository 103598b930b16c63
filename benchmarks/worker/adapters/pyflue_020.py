"""PyFlue 0.2.0 from PyPI, driven offline: ``pyflue.init(model=FunctionModel(...))``.

0.2.0's default harness (``pydanticai``) passes a non-string model straight to a new pydantic-ai
``Agent`` per prompt, so the scripted model is pydantic-ai's ``FunctionModel`` (the version 0.2.0
pins). Sessions persist to one SQLite file each under ``./.pyflue/sessions`` (the worker runs in a
scratch directory). Its harness does not stream: ``session.stream`` runs the prompt to the end and
yields one delta, so the streaming scenario is reported as not available.
"""

from __future__ import annotations

from typing import Any

from probes import NotAvailable
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import pyflue

from .base import ANSWER, WEATHER_ARGS, Kind


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
    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session

    async def prompt(self, text: str) -> str:
        return str((await self.session.prompt(text)).text)

    async def stream(self, text: str) -> int:
        raise NotAvailable("0.2.0's default harness does not stream (one final delta)")

    def retained(self) -> object:
        return self.session


class Agent:
    def __init__(self, agent: Any) -> None:
        self._agent = agent

    async def conversation(self, key: str) -> Conversation:
        return Conversation(await self._agent.session(key))


class PyFlue020Adapter:
    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        if kind == "stream":
            raise NotAvailable("0.2.0's default harness does not stream (one final delta)")
        if kind == "tool":
            agent = await pyflue.init(model=FunctionModel(_tool_then_answer), tools=[get_weather])  # type: ignore[arg-type]
        else:
            agent = await pyflue.init(model=FunctionModel(_answer))  # type: ignore[arg-type]
        return Agent(agent)


def create(options: dict[str, str]) -> PyFlue020Adapter:
    return PyFlue020Adapter()
