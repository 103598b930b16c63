"""The scenarios every framework runs, written once against :mod:`adapters.base`.

Each returns raw measurements (samples in microseconds, byte counts, throughputs); the driver
turns them into medians and spreads, so workers stay small and the statistics live in one place.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

from adapters.base import ANSWER, Adapter, Agent, Conversation
from probes import current_rss, time_runs

Params = dict[str, Any]


def _timing(params: Params) -> dict[str, Any]:
    keys = ("warmup", "min_runs", "max_runs", "budget_s")
    return {key: params[key] for key in keys}


def _fresh_prompt(agent: Agent, text: str) -> Callable[[], Awaitable[None]]:
    """One prompt on a new conversation: what a request handler serving a new user does."""
    keys = count()

    async def run() -> None:
        conversation = await agent.conversation(f"r{next(keys)}")
        answer = await conversation.prompt(text)
        if answer != ANSWER:
            raise AssertionError(f"unexpected answer {answer!r}")

    return run


async def text(adapter: Adapter, params: Params) -> dict[str, Any]:
    agent = await adapter.agent("text")
    return {"samples_us": await time_runs(_fresh_prompt(agent, "hello"), **_timing(params))}


async def tool(adapter: Adapter, params: Params) -> dict[str, Any]:
    agent = await adapter.agent("tool")
    return {"samples_us": await time_runs(_fresh_prompt(agent, "weather in Paris?"), **_timing(params))}


async def stream(adapter: Adapter, params: Params) -> dict[str, Any]:
    deltas = int(params["deltas"])
    agent = await adapter.agent("stream", deltas=deltas)
    keys = count()

    async def run() -> None:
        conversation = await agent.conversation(f"s{next(keys)}")
        received = await conversation.stream("hi")
        if received != deltas:
            raise AssertionError(f"received {received} deltas, expected {deltas}")

    return {"samples_us": await time_runs(run, **_timing(params)), "deltas": deltas}


async def _retain(agent: Agent, prefix: str, n: int, budget_s: float = float("inf")) -> list[object]:
    """Up to ``n`` conversations of one prompt each, kept alive; fewer if ``budget_s`` runs out."""
    kept: list[object] = []
    deadline = time.perf_counter() + budget_s
    for i in range(n):
        if time.perf_counter() > deadline:
            break
        conversation = await agent.conversation(f"{prefix}{i}")
        await conversation.prompt("hello")
        kept.append(conversation.retained())
    return kept


async def memory(adapter: Adapter, params: Params) -> dict[str, Any]:
    """Bytes per retained conversation: the RSS growth over up to ``conversations`` conversations,
    then, over as many more with tracemalloc on, the Python-allocated bytes, which RSS page rounding
    and allocator arenas cannot blur. Each pass stops early at ``budget_s`` (a slow framework makes
    fewer conversations; the counts are reported)."""
    n, budget = int(params["conversations"]), float(params["budget_s"])
    agent = await adapter.agent("text")
    warm = await _retain(agent, "w", int(params["warmup"]))
    gc.collect()
    before = current_rss()
    kept = await _retain(agent, "m", n, budget)
    gc.collect()
    rss_per = (current_rss() - before) / len(kept)
    tracemalloc.start()
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    kept_traced = await _retain(agent, "t", len(kept), budget)
    gc.collect()
    traced_per = (tracemalloc.get_traced_memory()[0] - traced_before) / len(kept_traced)
    tracemalloc.stop()
    result = {
        "rss_bytes_per_conversation": rss_per,
        "traced_bytes_per_conversation": traced_per,
        "n": len(kept),
        "n_traced": len(kept_traced),
    }
    del warm, kept, kept_traced
    return result


async def concurrent(adapter: Adapter, params: Params) -> dict[str, Any]:
    """``sessions`` conversations at once, each ``prompts`` prompts in a row (its history growing);
    ``repeats`` rounds, or fewer when ``budget_s`` is spent (at least one)."""
    sessions, prompts = int(params["sessions"]), int(params["prompts"])
    agent = await adapter.agent("text")

    async def drive(conversation: Conversation) -> None:
        for j in range(prompts):
            await conversation.prompt(f"question {j}")

    async def round(tag: str, width: int) -> float:
        conversations = [await agent.conversation(f"{tag}-{i}") for i in range(width)]
        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(*(drive(c) for c in conversations))
        return width * prompts / (time.perf_counter() - start)

    await round("warm", min(sessions, 5))
    rates: list[float] = []
    deadline = time.perf_counter() + float(params["budget_s"])
    while len(rates) < int(params["repeats"]) and (not rates or time.perf_counter() < deadline):
        rates.append(await round(f"c{len(rates)}", sessions))
    return {"prompts_per_s": rates, "sessions": sessions, "prompts": prompts}


SCENARIOS: dict[str, Callable[[Adapter, Params], Awaitable[dict[str, Any]]]] = {
    "text": text,
    "tool": tool,
    "stream": stream,
    "memory": memory,
    "concurrent": concurrent,
}
