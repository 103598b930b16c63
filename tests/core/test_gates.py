"""The in-process turn of a stored session: FIFO, and a cancelled waiter never loses the turn."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue._gates import TurnGate


async def test_waiters_enter_in_arrival_order() -> None:
    gate = TurnGate()
    order: list[int] = []
    async with anyio.create_task_group() as tg:
        async with gate:
            for i in range(5):
                tg.start_soon(_enter, gate, order, i)
                await anyio.wait_all_tasks_blocked()
    assert order == [0, 1, 2, 3, 4]


async def _enter(gate: TurnGate, order: list[int], i: int) -> None:
    async with gate:
        order.append(i)
        await anyio.lowlevel.checkpoint()


async def test_a_cancelled_waiter_leaves_the_queue_and_the_turn_moves_on() -> None:
    gate = TurnGate()
    entered: list[str] = []
    waiter = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        async with gate:
            tg.start_soon(_enter_named, gate, entered, "next")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(_enter_in, gate, entered, "cancelled", waiter)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(_enter_named, gate, entered, "last")
            await anyio.wait_all_tasks_blocked()
            waiter.cancel()
            await anyio.wait_all_tasks_blocked()
    assert entered == ["next", "last"]
    async with gate:  # free again: entering does not wait
        entered.append("after")
    assert entered[-1] == "after"


async def _enter_named(gate: TurnGate, entered: list[str], name: str) -> None:
    async with gate:
        entered.append(name)


async def _enter_in(gate: TurnGate, entered: list[str], name: str, scope: anyio.CancelScope) -> None:
    with scope:
        async with gate:
            entered.append(name)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_any_cancellation_pattern_keeps_the_order_of_the_rest(backend: str, cancel: list[bool]) -> None:
    async def main() -> list[int]:
        gate = TurnGate()
        order: list[int] = []
        scopes = [anyio.CancelScope() for _ in cancel]
        async with anyio.create_task_group() as tg:
            async with gate:
                for i, scope in enumerate(scopes):
                    tg.start_soon(_numbered, gate, order, i, scope)
                    await anyio.wait_all_tasks_blocked()
                for scope, doomed in zip(scopes, cancel, strict=True):
                    if doomed:
                        scope.cancel()
                await anyio.wait_all_tasks_blocked()
        return order

    assert anyio.run(main, backend=backend) == [i for i, doomed in enumerate(cancel) if not doomed]


async def _numbered(gate: TurnGate, order: list[int], i: int, scope: anyio.CancelScope) -> None:
    with scope:
        async with gate:
            order.append(i)
