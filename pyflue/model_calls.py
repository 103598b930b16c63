"""One model call, reported as every caller reports it: the turn loop and compaction's summaries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._clock import elapsed_ms
from .errors import error_payload
from .events import Event
from .journal import current_journal
from .models.base import Model, ModelRequest, ModelResponse, ResponseBuilder, TextDelta, ThinkingDelta, Usage

__all__ = ["Emit", "call_model"]

#: How an operation reports: ``emit(type, data)``, correlated to the operation by whoever made it.
Emit = Callable[[str, dict[str, Any]], Event | None]


async def call_model(model: Model, request: ModelRequest, emit: Emit, *, stream: bool) -> ModelResponse:
    """One model call, reported as every caller reports it: ``model_start``; with ``stream`` the
    provider's stream, each text/thinking delta an event; then ``model_end`` with the usage, or with
    the error. The response's usage always counts its request.

    Inside a resumable run the call is a step of its journal: a call the journal holds returns its
    recorded response, with no request and no events (they are in the log of the earlier attempt)."""
    journal = current_journal()
    if journal is None:
        return await _call_model(model, request, emit, stream=stream)
    return await journal.model_call(model, request, lambda: _call_model(model, request, emit, stream=stream))


async def _call_model(model: Model, request: ModelRequest, emit: Emit, *, stream: bool) -> ModelResponse:
    emit(
        "model_start",
        {"provider": model.provider, "model": model.model_name, "settings": dict(request.settings)},
    )
    started = time.perf_counter()
    try:
        if stream:
            builder = ResponseBuilder()
            async with model.stream(request) as events:
                async for event in events:
                    builder.add(event)
                    if type(event) is TextDelta:
                        emit("text_delta", {"text": event.text})
                    elif type(event) is ThinkingDelta and event.text:
                        emit("thinking_delta", {"text": event.text})
            response = builder.build()
        else:
            response = await model.request(request)
    except BaseException as exc:
        emit("model_end", {"error": error_payload(exc), "duration_ms": elapsed_ms(started)})
        raise
    usage = response.usage
    if usage.requests == 0:
        response.usage = Usage(
            usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens, 1
        )
    emit(
        "model_end",
        {
            "response_id": response.response_id,
            "response_model": response.model or model.model_name,
            "finish_reason": response.finish_reason,
            "usage": response.usage.to_dict(),
            "duration_ms": elapsed_ms(started),
        },
    )
    return response
