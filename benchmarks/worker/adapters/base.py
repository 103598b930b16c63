"""The interface every framework adapter implements, so each scenario is written once.

A scenario sees an :class:`Adapter` (what to import, how to build an agent of a given kind on a
scripted model) and :class:`Conversation` objects (prompt, stream, what a user keeps to continue).
The scripted models answer the same thing in every framework: ``"done"`` for a text prompt; a call to
``get_weather(city="Paris")`` then ``"done"`` for the tool scenario; ``deltas`` text deltas of
``"tok "`` when streaming.
"""

from __future__ import annotations

from typing import Literal, Protocol

Kind = Literal["text", "tool", "stream"]

ANSWER = "done"
DELTA = "tok "
WEATHER_ARGS = {"city": "Paris"}
INSTRUCTIONS = "You are a terse assistant."


class Conversation(Protocol):
    async def prompt(self, text: str) -> str:
        """One prompt on this conversation; the answer's text."""
        ...

    async def stream(self, text: str) -> int:
        """One streamed prompt; the number of text deltas the caller received."""
        ...

    def retained(self) -> object:
        """What a user keeps alive to continue this conversation later."""
        ...


class Agent(Protocol):
    async def conversation(self, key: str) -> Conversation:
        """A new conversation (``key`` is unique per call, for frameworks that name sessions)."""
        ...


class Adapter(Protocol):
    async def agent(self, kind: Kind, *, deltas: int = 200) -> Agent:
        """An agent on a scripted model of the given kind."""
        ...
