"""LangGraph's prebuilt ReAct agent (``create_react_agent``) on a scripted LangChain chat model.

The model overrides the async paths (``_agenerate``, ``_astream``): LangChain would otherwise run
the sync ones in a thread pool, which a real async provider client does not. A conversation is the
graph's message list, passed back in with the next user message (no checkpointer); streaming counts
the ``AIMessageChunk``s of ``astream(stream_mode="messages")``.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool

from .base import ANSWER, DELTA, INSTRUCTIONS, WEATHER_ARGS, Kind

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


class ScriptedChat(BaseChatModel):
    """Answers ``ANSWER``; with ``call_tool`` first calls ``get_weather``; streams ``deltas`` deltas."""

    call_tool: bool = False
    deltas: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChat:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        if self.call_tool and not isinstance(messages[-1], ToolMessage):
            call = {"name": "get_weather", "args": dict(WEATHER_ARGS), "id": "c1", "type": "tool_call"}
            return AIMessage(content="", tool_calls=[call])
        return AIMessage(content=ANSWER)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for _ in range(self.deltas):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=DELTA))
            if run_manager is not None:
                await run_manager.on_llm_new_token(DELTA, chunk=chunk)
            yield chunk


@tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


class Conversation:
    __slots__ = ("_graph", "history")

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self.history: list[Any] = []

    async def prompt(self, text: str) -> str:
        state = await self._graph.ainvoke({"messages": [*self.history, ("user", text)]})
        self.history = state["messages"]
        return str(self.history[-1].content)

    async def stream(self, text: str) -> int:
        count = 0
        pieces: list[str] = []
        async for message, _ in self._graph.astream(
            {"messages": [*self.history, ("user", text)]}, stream_mode="messages"
        ):
            if isinstance(message, AIMessageChunk) and message.content:
                count += 1
                pieces.append(str(message.content))
        self.history = [*self.history, ("user", text), AIMessage(content="".join(pieces))]
        return count

    def retained(self) -> object:
        return self.history


class Agent:
    def __init__(self, graph: Any) -> None:
        self._graph = graph

    async def conversation(self, key: str) -> Conversation:
        return Conversation(self._graph)


class LangGraphAdapter:
    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        model = ScriptedChat(call_tool=kind == "tool", deltas=deltas if kind == "stream" else 0)
        tools = [get_weather] if kind == "tool" else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = create_react_agent(model, tools, prompt=INSTRUCTIONS)
        return Agent(graph)


def create(options: dict[str, str]) -> LangGraphAdapter:
    return LangGraphAdapter()
