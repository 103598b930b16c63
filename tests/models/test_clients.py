"""Client pools: who owns the providers' HTTP clients, which pool a call uses, and closing them."""

from __future__ import annotations

import anyio
import httpx
import pytest

from pyflue.errors import ConfigError
from pyflue.models import ClientPool, ModelRequest, TextPart, UserMessage, current_pool, use_pool
from pyflue.models.anthropic import AnthropicModel
from pyflue.models.openai import OpenAIChatModel
from tests.models import anthropic_fixtures as afx
from tests.models import openai_fixtures as ofx
from tests.wire import WireServer


def ask() -> ModelRequest:
    return ModelRequest([UserMessage([TextPart("Hello")])])


def anthropic(wire: WireServer, **kwargs: object) -> AnthropicModel:
    return AnthropicModel("claude-haiku-4-5", api_key="k", base_url=wire.url, **kwargs)  # type: ignore[arg-type]


async def test_a_pool_closes_its_clients_and_refuses_use_after() -> None:
    pool = ClientPool()
    first, second = pool.client("anthropic"), pool.client("openai")
    assert pool.client("anthropic") is first and first is not second and len(pool) == 2
    await pool.aclose()
    assert first.is_closed and second.is_closed and pool.closed and len(pool) == 0
    await pool.aclose()  # idempotent
    with pytest.raises(ConfigError, match="ClientPool is closed"):
        pool.client("anthropic")


async def test_async_with_closes_the_pool() -> None:
    async with ClientPool() as pool:
        client = pool.client("openai")
        assert not client.is_closed
    assert client.is_closed and pool.closed


async def test_two_pools_do_not_share_clients() -> None:
    async with ClientPool() as one, ClientPool() as two:
        assert one.client("anthropic") is not two.client("anthropic")
        await one.aclose()
        assert not two.client("anthropic").is_closed


async def test_providers_use_the_activated_pool(wire: WireServer) -> None:
    model = anthropic(wire)
    outside = current_pool()
    async with ClientPool() as pool, ClientPool() as other:
        with use_pool(pool):
            assert current_pool() is pool
            assert model.client is pool.client("anthropic")
            wire.json(afx.message([afx.text("pooled")]))
            assert (await model.request(ask())).text == "pooled"
            with use_pool(other):  # the innermost pool wins, the outer one is back after
                assert model.client is other.client("anthropic")
            assert current_pool() is pool
        assert current_pool() is outside
        assert len(pool) == 1 and len(other) == 1


async def test_tasks_started_inside_use_the_activated_pool(wire: WireServer) -> None:
    seen: list[ClientPool] = []

    async def child() -> None:
        seen.append(current_pool())

    async with ClientPool() as pool:
        with use_pool(pool):
            async with anyio.create_task_group() as tg:
                tg.start_soon(child)
    assert seen == [pool]


async def test_a_call_through_a_closed_pool_is_a_config_error(wire: WireServer) -> None:
    pool = ClientPool()
    await pool.aclose()
    with use_pool(pool), pytest.raises(ConfigError, match="ClientPool is closed"):
        await anthropic(wire).request(ask())
    assert wire.requests == []


async def test_an_explicit_http_client_wins_over_the_pool(wire: WireServer) -> None:
    async with httpx.AsyncClient() as own, ClientPool() as pool:
        model = OpenAIChatModel("gpt-4.1-mini", base_url=wire.url, http_client=own)
        with use_pool(pool):
            assert model.client is own
            wire.json(ofx.completion("own client"))
            assert (await model.request(ask())).text == "own client"
        assert len(pool) == 0


async def test_without_a_pool_calls_use_one_implicit_pool_per_event_loop(wire: WireServer) -> None:
    fallback = current_pool()
    assert current_pool() is fallback and not fallback.closed
    model = anthropic(wire)
    assert model.client is fallback.client("anthropic")
    wire.json(afx.message([afx.text("no pool opened")]))
    assert (await model.request(ask())).text == "no pool opened"


def test_the_implicit_pool_is_per_event_loop() -> None:
    async def pool_of_this_loop() -> ClientPool:
        return current_pool()

    first = anyio.run(pool_of_this_loop)
    second = anyio.run(pool_of_this_loop, backend="trio")
    assert first is not second
