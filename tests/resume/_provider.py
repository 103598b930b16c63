"""A provider wire server for resumed runs: OpenAI's Chat Completions on 127.0.0.1 (uvicorn in a
thread), answering each request from what it asks, so any process, killed or resumed, gets the
same answer to the same request; it keeps every request it served, to count them.

The conversation it plays (``SUB`` marks the subagent's instructions):

- ``book <item>`` from the user: the parent delegates, calling the ``task`` tool (the ``checker``
  subagent) for ``check <item>``;
- ``check <item>`` (the subagent): it calls ``verify``; with verify's result it answers
  ``verified <item>``;
- the parent with a ``task`` result: it calls ``lookup``, then ``book``, then answers
  ``done: <results>``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.models import openai_fixtures as fx
from tests.wire import sse_event

SUB = "You check bookings."


def _answer(body: dict[str, Any]) -> tuple[str | None, list[tuple[str, str, str]]]:
    """``(text, tool calls)`` of the answer to a Chat Completions request body."""
    messages = body["messages"]
    sub = any(m["role"] == "system" and SUB in str(m.get("content")) for m in messages)
    last = messages[-1]
    if last["role"] == "user":
        item = str(
            last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
        ).split()[-1]
        if sub:
            return None, [("v-" + item, "verify", json.dumps({"item": item}))]
        return None, [("t-" + item, "task", json.dumps({"agent": "checker", "prompt": "check " + item}))]
    results = [m for m in messages if m["role"] == "tool"]
    tail: list[dict[str, Any]] = []
    for m in reversed(messages):
        if m["role"] != "tool":
            break
        tail.insert(0, m)
    if sub:
        return "verified " + tail[-1]["content"], []
    kind, _, item = tail[0]["tool_call_id"].partition("-")
    if kind == "t":
        return None, [("l-" + item, "lookup", json.dumps({"item": item}))]
    if kind == "l":
        return None, [("b-" + item, "book", json.dumps({"item": item}))]
    return "done: " + "; ".join(m["content"] for m in tail) + f" ({len(results)} results)", []


class Provider:
    """The server; ``requests`` holds the bodies it answered, ``url`` is its base URL."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.requests: list[dict[str, Any]] = []

    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        text, calls = _answer(body)
        usage = fx.usage(10 + len(body["messages"]), 5)
        reason = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            made = [fx.tool_call(*call) for call in calls] or None
            return JSONResponse(fx.completion(text, tool_calls=made, finish_reason=reason, usage=usage))

        async def events() -> AsyncIterator[bytes]:
            for name, data in fx.stream(text, calls=calls, finish_reason=reason, usage_value=usage):
                yield sse_event(name, data)

        return StreamingResponse(events(), headers={"content-type": "text/event-stream"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])


@contextmanager
def serving(port: int) -> Iterator[Provider]:
    provider = Provider(port)
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the provider server did not start")
        time.sleep(0.01)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(5)
