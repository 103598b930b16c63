"""Deadlines: ``timeout`` bounds a request as a whole and a stream's waits for progress, against real
local servers that answer late, refuse, or hold a stream open with comments and pings."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from pyflue.errors import ConfigError, ModelTimeoutError, OverloadedError
from pyflue.models import (
    ModelRequest,
    ModelSettings,
    ResponseBuilder,
    StreamEvent,
    TextDelta,
    TextPart,
    UserMessage,
)
from pyflue.models.anthropic import AnthropicModel
from pyflue.models.base import settings_adapter
from pyflue.models.openai import OpenAIChatModel
from tests.models import anthropic_fixtures as afx
from tests.models import openai_fixtures as ofx
from tests.wire import Reply, WireServer, sse_event

GUARD = 10  # seconds: a deadline that did not hold fails the test instead of hanging it


def ask(timeout: float | None = None) -> ModelRequest:
    settings = ModelSettings(timeout=timeout) if timeout is not None else ModelSettings()
    return ModelRequest([UserMessage([TextPart("Hello")])], settings=settings)


def openai(wire: WireServer, **kwargs: Any) -> OpenAIChatModel:
    return OpenAIChatModel("gpt-4.1-mini", base_url=wire.url, retry_base_delay=0.001, **kwargs)


def anthropic(wire: WireServer, **kwargs: Any) -> AnthropicModel:
    return AnthropicModel(
        "claude-haiku-4-5", api_key="k", base_url=wire.url, retry_base_delay=0.001, **kwargs
    )


async def drain(model: OpenAIChatModel | AnthropicModel, request: ModelRequest) -> list[StreamEvent]:
    """The events a stream delivered before it ended or failed (the error is re-raised)."""
    events: list[StreamEvent] = []
    with anyio.fail_after(GUARD):
        async with model.stream(request) as stream:
            async for event in stream:
                events.append(event)
    return events


async def test_a_stream_of_comments_only_times_out(wire: WireServer) -> None:
    wire.trickle([])  # headers, then ": keep-alive" every 50 ms, forever
    with pytest.raises(ModelTimeoutError, match=r"sent no event for 0.5s") as info:
        await drain(openai(wire, max_retries=2), ask(timeout=0.5))
    assert info.value.provider == "openai"
    assert len(wire.requests) == 1  # the headers came: nothing to retry


async def test_a_stream_that_stops_making_progress_times_out(wire: WireServer) -> None:
    wire.trickle(ofx.stream("Hello there", done=False)[:3])
    events: list[StreamEvent] = []
    with pytest.raises(ModelTimeoutError, match=r"sent no further event for 0.5s"):
        with anyio.fail_after(GUARD):
            async with openai(wire).stream(ask(timeout=0.5)) as stream:
                async for event in stream:
                    events.append(event)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo "]  # delivered first


async def test_anthropic_pings_are_not_progress(wire: WireServer) -> None:
    answer = afx.stream_events(afx.message([afx.text("Hello there")]))
    wire.trickle(answer[:3], keepalive=sse_event("ping", {"type": "ping"}))
    with pytest.raises(ModelTimeoutError, match=r"anthropic stream sent no further event for 0.5s"):
        await drain(anthropic(wire), ask(timeout=0.5))


async def test_a_slow_stream_that_keeps_making_progress_is_not_cut(wire: WireServer) -> None:
    """Eight events 0.15 s apart take longer than the 0.5 s timeout, but no gap does."""
    events = ofx.stream("one two three four five six", fragment=4, usage_value=ofx.usage(5, 6))
    chunks = [sse_event(name, data) for name, data in events]
    assert len(chunks) >= 8
    wire.reply(Reply(200, chunks=chunks, chunk_delay=0.15, headers={"content-type": "text/event-stream"}))
    builder = ResponseBuilder()
    for event in await drain(openai(wire), ask(timeout=0.5)):
        builder.add(event)
    assert builder.build().text == "one two three four five six"


async def test_a_request_has_one_deadline_for_all_its_attempts(wire: WireServer) -> None:
    wire.reply(Reply(200, b"{}", delay=1.0))
    wire.reply(Reply(200, b"{}", delay=1.0))
    with pytest.raises(ModelTimeoutError, match=r"did not answer within 0.3s \(timeout=0.3, 1 attempt"):
        with anyio.fail_after(GUARD):
            await openai(wire, max_retries=2).request(ask(timeout=0.3))
    assert len(wire.requests) == 1  # the deadline was spent: no second attempt


async def test_a_retry_that_cannot_finish_in_time_is_not_waited_for(wire: WireServer) -> None:
    overloaded = afx.error("overloaded_error", "Overloaded")
    wire.json(overloaded, status=529, headers={"retry-after": "30"})
    with pytest.raises(OverloadedError, match="Overloaded"):
        with anyio.fail_after(GUARD):
            await anthropic(wire, max_retries=2).request(ask(timeout=5))
    assert len(wire.requests) == 1


async def test_retries_happen_within_the_deadline(wire: WireServer) -> None:
    wire.json(afx.error("overloaded_error", "Overloaded"), status=529)
    wire.json(afx.message([afx.text("second try")]))
    assert (await anthropic(wire, max_retries=2).request(ask(timeout=5))).text == "second try"
    assert len(wire.requests) == 2


async def test_the_first_event_deadline_counts_from_the_start_of_the_call(wire: WireServer) -> None:
    """Headers 0.4 s late, then comments: the first event is due 0.6 s after the call started."""
    wire.reply(
        Reply(200, chunks=[], delay=0.4, headers={"content-type": "text/event-stream"}, trickle=b": hi\n\n")
    )
    with pytest.raises(ModelTimeoutError, match=r"sent no event for 0\.6s"):
        await drain(anthropic(wire), ask(timeout=0.6))


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "5", True])
async def test_a_timeout_must_be_a_positive_number(wire: WireServer, bad: Any) -> None:
    with pytest.raises(
        ConfigError, match=r"model_settings\['timeout'\] must be a positive number of seconds"
    ):
        await openai(wire).request(ModelRequest([UserMessage([TextPart("hi")])], settings={"timeout": bad}))  # type: ignore[typeddict-item]
    with pytest.raises(ConfigError, match=r"model_settings\['timeout'\] must be a positive number"):
        async with anthropic(wire).stream(ask(timeout=bad)):
            pass
    with pytest.raises(ConfigError, match=r"^timeout must be a positive number"):
        openai(wire, timeout=bad)
    assert wire.requests == []


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf])
def test_settings_validation_refuses_a_timeout_that_is_not_positive(bad: float) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        settings_adapter().validate_python({"timeout": bad})
    assert settings_adapter().validate_python({"timeout": 2}) == {"timeout": 2.0}
