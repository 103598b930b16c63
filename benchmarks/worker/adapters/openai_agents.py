"""openai-agents with a small scripted ``Model`` subclass.

The SDK's own scripted test model deep-copies every call's input, which would charge the framework
for test bookkeeping. This model builds its Responses-API items and stream events once, without
validation (``model_construct``, as the OpenAI client does when it parses a response), and hands the
same immutable objects out on every call, so what is timed is the framework, not the script. (The
retained history is unaffected: ``to_input_list()`` dumps items into new dicts.)
Option ``tracing``: ``off`` (``RunConfig(tracing_disabled=True)``) or ``default`` (the SDK's default
tracing; with no ``OPENAI_API_KEY`` its exporter drops the traces instead of sending them).
A conversation is ``result.to_input_list()``, extended with the next user message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent as OAgent
from agents import RunConfig, Runner, function_tool
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
)

from .base import ANSWER, DELTA, INSTRUCTIONS, WEATHER_ARGS, Kind


def _message(text: str) -> ResponseOutputMessage:
    content = ResponseOutputText.model_construct(annotations=[], text=text, type="output_text", logprobs=[])
    return ResponseOutputMessage.model_construct(
        id="msg_1", content=[content], role="assistant", status="completed", type="message"
    )


def _tool_call() -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall.model_construct(
        arguments=json.dumps(WEATHER_ARGS),
        call_id="c1",
        name="get_weather",
        type="function_call",
        id="fc_1",
        status="completed",
    )


def _has_tool_result(input: str | list[TResponseInputItem]) -> bool:
    return not isinstance(input, str) and bool(input) and input[-1].get("type") == "function_call_output"


class ScriptedModel(Model):
    """Answers ``ANSWER``; with ``tool`` first calls ``get_weather``; streams ``deltas`` deltas."""

    def __init__(self, *, tool: bool = False, deltas: int = 0) -> None:
        self.tool = tool
        self.deltas = deltas
        self._answer = [_message(ANSWER if not deltas else DELTA * deltas)]
        self._call = [_tool_call()]
        self._events = [
            ResponseTextDeltaEvent.model_construct(
                content_index=0,
                delta=DELTA,
                item_id="msg_1",
                logprobs=[],
                output_index=0,
                sequence_number=number,
                type="response.output_text.delta",
            )
            for number in range(deltas)
        ]

    def _output(self, input: str | list[TResponseInputItem]) -> list[Any]:
        if self.tool and not _has_tool_result(input):
            return list(self._call)
        return list(self._answer)

    async def get_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return ModelResponse(output=self._output(input), usage=Usage(requests=1), response_id=None)

    async def stream_response(  # type: ignore[override]
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        for event in self._events:
            yield event
        response = Response.model_construct(
            id="resp_1",
            created_at=0.0,
            model="scripted",
            object="response",
            output=self._output(input),
            parallel_tool_calls=True,
            tool_choice="auto",
            tools=[],
            status="completed",
            usage=None,
        )
        yield ResponseCompletedEvent.model_construct(
            response=response, sequence_number=self.deltas, type="response.completed"
        )


@function_tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


class Conversation:
    __slots__ = ("_agent", "_config", "history")

    def __init__(self, agent: OAgent[Any], config: RunConfig) -> None:
        self._agent = agent
        self._config = config
        self.history: list[TResponseInputItem] | None = None

    def _input(self, text: str) -> str | list[TResponseInputItem]:
        if self.history is None:
            return text
        return [*self.history, {"role": "user", "content": text}]

    async def prompt(self, text: str) -> str:
        result = await Runner.run(self._agent, self._input(text), run_config=self._config)
        self.history = result.to_input_list()
        return str(result.final_output)

    async def stream(self, text: str) -> int:
        result = Runner.run_streamed(self._agent, self._input(text), run_config=self._config)
        count = 0
        async for event in result.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                count += 1
        self.history = result.to_input_list()
        return count

    def retained(self) -> object:
        return self.history


class Agent:
    def __init__(self, agent: OAgent[Any], config: RunConfig) -> None:
        self._agent = agent
        self._config = config

    async def conversation(self, key: str) -> Conversation:
        return Conversation(self._agent, self._config)


class OpenAIAgentsAdapter:
    def __init__(self, tracing: str) -> None:
        self.config = RunConfig(tracing_disabled=tracing == "off")

    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        model = ScriptedModel(tool=kind == "tool", deltas=deltas if kind == "stream" else 0)
        tools = [get_weather] if kind == "tool" else []
        agent = OAgent(name="bench", instructions=INSTRUCTIONS, model=model, tools=tools)
        return Agent(agent, self.config)


def create(options: dict[str, str]) -> OpenAIAgentsAdapter:
    return OpenAIAgentsAdapter(options.get("tracing", "off"))
