"""The dispatch store contract: every DispatchStore implementation passes these tests unchanged.

A store joins the suite as one more entry of ``BACKENDS``: a class that opens fresh, empty storage
(``new``), a second handle on the same storage as another process would (``reopen``), and cleans up.
Time is an injected clock (``Clock``), so leases and backoff are tested without sleeping.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue.errors import ConfigError, InvalidIdError, NotFoundError
from pyflue.events import Event
from pyflue.stores.dispatch_memory import MemoryDispatchStore
from pyflue.stores.dispatches import (
    DispatchOutcome,
    DispatchRecord,
    DispatchStore,
    from_us,
    to_us,
)
from pyflue.stores.postgres import PostgresDatabase, PostgresDispatchStore
from pyflue.stores.sqlite import SQLiteDatabase
from pyflue.stores.sqlite.dispatches import SQLiteDispatchStore

LEASE = 30.0


class Clock:
    """The stores' time: starts at a fixed instant and moves only when told."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryBackend:
    name = "memory"

    def __init__(self, tmp_path: Path) -> None:
        del tmp_path

    def new(self, clock: Callable[[], float] = time.time) -> DispatchStore:
        return MemoryDispatchStore(clock=clock)

    def reopen(self, store: DispatchStore, clock: Callable[[], float] = time.time) -> DispatchStore:
        return store  # one process's memory: the same store is the only handle

    def close(self) -> None:
        pass


class SQLiteBackend:
    """Each ``new`` store is a fresh file; ``reopen`` opens a second connection on it, as a second
    process would."""

    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0
        self.databases: list[SQLiteDatabase] = []

    def _open(self, path: Path, clock: Callable[[], float]) -> DispatchStore:
        db = SQLiteDatabase(path)
        self.databases.append(db)
        return SQLiteDispatchStore(db, clock=clock, poll_interval=0.01)

    def new(self, clock: Callable[[], float] = time.time) -> DispatchStore:
        self.count += 1
        return self._open(self.tmp_path / f"dispatch-{self.count}.db", clock)

    def reopen(self, store: DispatchStore, clock: Callable[[], float] = time.time) -> DispatchStore:
        assert isinstance(store, SQLiteDispatchStore)
        return self._open(store.db.path, clock)

    def close(self) -> None:
        for db in self.databases:
            db.close()


class PostgresBackend:
    """A schema of the test session's PostgreSQL cluster per test; each ``new`` store starts from
    empty tables (the suite never uses two ``new`` stores at once), and ``reopen`` opens a second
    database object (its own connections), as another process would."""

    name = "postgres"

    def __init__(self, tmp_path: Path, url: str) -> None:
        del tmp_path
        self.url = url
        self.schema = f"dispatch_{os.getpid()}_{next(_postgres_schemas)}"
        self.db = PostgresDatabase(url, schema=self.schema, pool_size=4)
        self.databases = [self.db]

    def new(self, clock: Callable[[], float] | None = None) -> DispatchStore:
        self.db.call(
            lambda conn: conn.execute(
                "TRUNCATE dispatch_items, dispatch_attempts, dispatch_events RESTART IDENTITY"
            )
        )
        return PostgresDispatchStore(self.db, clock=clock)

    def reopen(self, store: DispatchStore, clock: Callable[[], float] | None = None) -> DispatchStore:
        db = PostgresDatabase(self.url, schema=self.schema, pool_size=4)
        self.databases.append(db)
        return PostgresDispatchStore(db, clock=clock)

    def close(self) -> None:
        for db in self.databases:
            db.close()


_postgres_schemas = itertools.count()
BACKENDS: dict[str, Any] = {"memory": MemoryBackend, "sqlite": SQLiteBackend, "postgres": PostgresBackend}

_HYPOTHESIS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "postgres":
        opened = PostgresBackend(tmp_path, request.getfixturevalue("postgres_url"))
    else:
        opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend: Any, clock: Clock) -> DispatchStore:
    return backend.new(clock)  # type: ignore[no-any-return]


def item(session: str = "s", text: str = "hi", **fields: Any) -> DispatchRecord:
    return DispatchRecord(agent="agent", instance_id="inst", session_id=session, input=text, **fields)


async def all_records(store: DispatchStore) -> list[DispatchRecord]:
    """Every record, oldest first, read through the paging API."""
    found: list[DispatchRecord] = []
    cursor = None
    while True:
        page = await store.list(limit=7, cursor=cursor)
        found.extend(page)
        cursor = page.next_cursor
        if cursor is None:
            return found[::-1]


# Ids are data: any printable text (what pyflue.ids.check_id admits), path-like or not.
_printable = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")) | st.just(
    " "
)
ids = st.text(_printable, min_size=1, max_size=40) | st.sampled_from(
    ["..", "../etc/passwd", "a/b", "/", "C:\\x"]
)


# -- records ---------------------------------------------------------------------------------------


@given(
    agent=ids,
    instance=ids,
    session=ids,
    key=st.none() | ids,
    text=st.text(max_size=50) | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()})),
    micros=st.integers(0, 4_000_000_000 * 1_000_000),
)
def test_records_round_trip_through_json(
    agent: str, instance: str, session: str, key: str | None, text: Any, micros: int
) -> None:
    record = DispatchRecord(
        agent=agent,
        instance_id=instance,
        session_id=session,
        input=text,
        key=key,
        accepted_at=from_us(micros),
        outcome=DispatchOutcome(text="t", usage={"input_tokens": 3}, error=None),
    )
    assert DispatchRecord.model_validate_json(record.model_dump_json()) == record
    assert to_us(from_us(micros)) == micros
    assert record.dispatch_id.startswith("dispatch:")


@pytest.mark.parametrize("bad", ["", "x" * 257, "a\x00b", "line\nbreak"])
def test_bad_ids_and_keys_are_typed_errors(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        item(session=bad)
    with pytest.raises(InvalidIdError):
        item(key=bad)
    with pytest.raises(ConfigError, match="max_attempts"):
        item(max_attempts=0)


# -- enqueue and idempotency -----------------------------------------------------------------------


async def test_enqueue_stamps_the_store_clock_and_reads_back(store: DispatchStore, clock: Clock) -> None:
    parts = [{"type": "text", "text": "look"}, {"type": "image", "url": "https://x/y.png"}]
    stored = await store.enqueue(
        item(text="ignored", traceparent="00-abc-def-01").model_copy(update={"input": parts})
    )
    assert stored.status == "queued" and stored.attempts == 0
    assert stored.accepted_at == stored.available_at == from_us(round(clock.now * 1_000_000))
    assert await store.get(stored.dispatch_id) == stored
    assert await store.get("dispatch:missing") is None
    assert isinstance(stored.input, list)
    stored.input.append({"type": "text", "text": "changed by the caller"})
    parts.clear()
    assert (await store.get(stored.dispatch_id)).input == [  # type: ignore[union-attr]
        {"type": "text", "text": "look"},
        {"type": "image", "url": "https://x/y.png"},
    ]
    with pytest.raises(ConfigError, match="exists already"):
        await store.enqueue(item().model_copy(update={"dispatch_id": stored.dispatch_id}))
    with pytest.raises(ConfigError, match="new record"):
        await store.enqueue(item().model_copy(update={"status": "running"}))


@_HYPOTHESIS
@given(key=ids, agent=ids, instance=ids, session=ids, other=ids)
def test_a_key_returns_the_first_record_and_refuses_another_target(
    backend: Any, anyio_backend: str, key: str, agent: str, instance: str, session: str, other: str
) -> None:
    async def main() -> None:
        store = backend.new()
        target = {"agent": agent, "instance_id": instance, "session_id": session}
        first = await store.enqueue(DispatchRecord(**target, input="one", key=key))
        again = await store.enqueue(DispatchRecord(**target, input="two", key=key))
        assert again == first
        assert [r.dispatch_id for r in await all_records(store)] == [first.dispatch_id]
        for field in target:
            changed = {**target, field: other}
            if changed == target:
                continue
            with pytest.raises(ConfigError, match="already used"):
                await store.enqueue(DispatchRecord(**changed, input="three", key=key))
        assert len(await all_records(store)) == 1
        # the same ids with another key (or none) are ordinary new items of the same session
        await store.enqueue(DispatchRecord(**target, input="four"))
        assert [r.input for r in await all_records(store)] == ["one", "four"]
        assert [
            r.session_id for r in await store.list(agent=agent, instance_id=instance, session_id=session)
        ] == [
            session,
            session,
        ]

    anyio.run(main, backend=anyio_backend)


async def test_concurrent_enqueues_each_commit_and_a_bad_one_fails_alone(store: DispatchStore) -> None:
    first = await store.enqueue(item(session="a", key="taken"))
    results: dict[int, DispatchRecord] = {}
    errors: dict[int, Exception] = {}

    async def one(n: int) -> None:
        try:
            if n == 37:
                results[n] = await store.enqueue(item(session="b", key="taken"))
            else:
                results[n] = await store.enqueue(item(session=f"s{n % 5}", text=str(n), key=f"k{n}"))
        except ConfigError as exc:
            errors[n] = exc

    async with anyio.create_task_group() as group:
        for n in range(100):
            group.start_soon(one, n)
    assert list(errors) == [37]
    stored = {r.dispatch_id: r for r in await all_records(store)}
    assert len(stored) == 100 and first.dispatch_id in stored
    for n, record in results.items():
        assert stored[record.dispatch_id] == record and record.input == str(n)


async def test_cancelled_enqueuers_leave_the_store_usable(store: DispatchStore) -> None:
    returned: list[DispatchRecord] = []

    async def one(n: int) -> None:
        returned.append(await store.enqueue(item(session=f"s{n % 3}", text=str(n))))

    for round_ in range(5):
        with anyio.move_on_after(0):  # cancel a burst at its first checkpoint, wherever it is
            async with anyio.create_task_group() as group:
                for n in range(20):
                    group.start_soon(one, round_ * 20 + n)
    with anyio.fail_after(10):
        last = await store.enqueue(item(text="after"))
    stored = {r.dispatch_id for r in await all_records(store)}
    assert {r.dispatch_id for r in returned} <= stored and last.dispatch_id in stored


# -- claims, order and leases ----------------------------------------------------------------------


async def test_claims_take_session_heads_in_order(store: DispatchStore) -> None:
    a = [await store.enqueue(item(session="a", text=f"a{n}")) for n in range(3)]
    b = [await store.enqueue(item(session="b", text=f"b{n}")) for n in range(2)]
    first = await store.claim("w1", LEASE, limit=10)
    assert {r.dispatch_id for r in first} == {a[0].dispatch_id, b[0].dispatch_id}
    assert all(r.status == "running" and r.attempts == 1 and r.worker == "w1" for r in first)
    assert await store.claim("w2", LEASE, limit=10) == []  # both sessions are busy
    done = await store.complete(a[0].dispatch_id, "w1", DispatchOutcome(operation_id="op", text="ok"))
    assert done is not None and done.status == "delivered" and done.outcome.text == "ok"  # type: ignore[union-attr]
    assert [r.dispatch_id for r in await store.claim("w2", LEASE, limit=10)] == [a[1].dispatch_id]
    assert await store.complete(a[1].dispatch_id, "w1", DispatchOutcome()) is None  # not w1's lease
    with pytest.raises(ConfigError):
        await store.claim("w", LEASE, limit=0)
    with pytest.raises(ConfigError):
        await store.claim("w", 0, limit=1)


async def test_an_expired_lease_is_taken_over_and_the_crash_recorded(
    store: DispatchStore, clock: Clock
) -> None:
    record = await store.enqueue(item())
    [mine] = await store.claim("w1", 10, limit=1)
    clock.advance(9)
    assert await store.renew(record.dispatch_id, "w1", 10)
    clock.advance(9)
    assert await store.claim("w2", 10) == []  # renewed: still w1's
    clock.advance(2)
    [theirs] = await store.claim("w2", 10)
    assert theirs.dispatch_id == record.dispatch_id and theirs.attempts == 2 and theirs.worker == "w2"
    assert not await store.renew(record.dispatch_id, "w1", 10)
    assert await store.complete(record.dispatch_id, "w1", DispatchOutcome(text="late")) is None
    assert await store.fail(record.dispatch_id, "w1", {"type": "X", "message": "m"}, None) is None
    done = await store.complete(record.dispatch_id, "w2", DispatchOutcome(text="ok"))
    assert done is not None and done.status == "delivered"
    attempts = await store.attempts(record.dispatch_id)
    assert [(a.number, a.worker, a.status) for a in attempts] == [
        (1, "w1", "crashed"),
        (2, "w2", "delivered"),
    ]
    assert attempts[0].error is not None and attempts[0].error["type"] == "WorkerLostError"
    assert attempts[0].ended_at == attempts[1].started_at
    assert mine.attempts == 1


async def test_an_expired_lease_not_yet_taken_over_still_belongs_to_its_worker(
    store: DispatchStore, clock: Clock
) -> None:
    record = await store.enqueue(item())
    await store.claim("w1", 5)
    clock.advance(6)
    assert await store.renew(record.dispatch_id, "w1", 5)
    assert await store.claim("w2", 5) == []


async def test_retries_back_off_then_max_attempts_fail_and_the_session_moves_on(
    store: DispatchStore, clock: Clock
) -> None:
    poison = await store.enqueue(item(text="poison", max_attempts=2))
    after = await store.enqueue(item(text="after"))
    [claim] = await store.claim("w", LEASE)
    error = {"type": "ModelError", "message": "boom"}
    retried = await store.fail(claim.dispatch_id, "w", error, 5)
    assert retried is not None and retried.status == "queued" and retried.worker is None
    assert await store.claim("w", LEASE) == []  # backing off, and still the session's head
    clock.advance(5)
    [second] = await store.claim("w", LEASE)
    assert second.dispatch_id == poison.dispatch_id and second.attempts == 2
    final = await store.fail(poison.dispatch_id, "w", error, 5)
    assert final is not None and final.status == "failed" and final.outcome is not None
    assert final.outcome.error == error
    [next_] = await store.claim("w", LEASE)
    assert next_.dispatch_id == after.dispatch_id
    assert [a.status for a in await store.attempts(poison.dispatch_id)] == ["failed", "failed"]
    no_retry = await store.fail(after.dispatch_id, "w", error, None)
    assert no_retry is not None and no_retry.status == "failed" and no_retry.attempts == 1


async def test_a_worker_that_keeps_crashing_exhausts_the_attempts(store: DispatchStore, clock: Clock) -> None:
    record = await store.enqueue(item(max_attempts=2))
    after = await store.enqueue(item(text="after"))
    await store.claim("w1", 1)
    clock.advance(2)
    await store.claim("w2", 1)
    clock.advance(2)
    [claimed] = await store.claim("w3", 1)
    assert claimed.dispatch_id == after.dispatch_id
    lost = await store.get(record.dispatch_id)
    assert lost is not None and lost.status == "failed" and lost.outcome is not None
    assert lost.outcome.error is not None and lost.outcome.error["type"] == "WorkerLostError"
    assert [a.status for a in await store.attempts(record.dispatch_id)] == ["crashed", "crashed"]


async def test_cancel_queued_running_and_finished(store: DispatchStore, clock: Clock) -> None:
    running = await store.enqueue(item(session="a", text="running"))
    queued = await store.enqueue(item(session="a", text="queued"))
    neighbour = await store.enqueue(item(session="a", text="neighbour"))
    other = await store.enqueue(item(session="b", text="other"))
    assert await store.cancel("dispatch:missing", "x") is None
    claimed = await store.claim("w", LEASE, limit=5)
    assert {r.dispatch_id for r in claimed} == {running.dispatch_id, other.dispatch_id}

    gone = await store.cancel(queued.dispatch_id, "changed my mind")
    assert gone is not None and gone.status == "cancelled" and gone.cancel_requested == "changed my mind"
    asked = await store.cancel(running.dispatch_id, "stop")
    assert asked is not None and asked.status == "running" and asked.cancel_requested == "stop"
    again = await store.cancel(running.dispatch_id, "second reason")
    assert again is not None and again.cancel_requested == "stop"
    assert await store.finish_cancelled(running.dispatch_id, "intruder") is None
    ended = await store.finish_cancelled(running.dispatch_id, "w")
    assert ended is not None and ended.status == "cancelled"

    [next_] = await store.claim("w", LEASE, limit=5)
    assert next_.dispatch_id == neighbour.dispatch_id  # the cancelled item is skipped, never delivered
    done = await store.complete(other.dispatch_id, "w", DispatchOutcome(text="fine"))
    assert done is not None and done.status == "delivered"
    assert await store.cancel(other.dispatch_id, "too late") == done
    assert [a.status for a in await store.attempts(running.dispatch_id)] == ["cancelled"]
    assert await store.attempts(queued.dispatch_id) == []


async def test_cancel_requests_win_over_retries_and_lose_to_completion(
    store: DispatchStore, clock: Clock
) -> None:
    failing = await store.enqueue(item(session="a"))
    finishing = await store.enqueue(item(session="b"))
    dead = await store.enqueue(item(session="c"))
    await store.claim("w", 10, limit=3)
    for record in (failing, finishing, dead):
        await store.cancel(record.dispatch_id, "stop")
    failed = await store.fail(failing.dispatch_id, "w", {"type": "AbortedError", "message": "stop"}, 1)
    assert failed is not None and failed.status == "cancelled"
    done = await store.complete(finishing.dispatch_id, "w", DispatchOutcome(text="done anyway"))
    assert done is not None and done.status == "delivered"
    clock.advance(11)  # the worker of ``dead`` is gone: a cancel now ends it at once
    ended = await store.cancel(dead.dispatch_id, "stop")
    assert ended is not None and ended.status == "cancelled"
    assert [a.status for a in await store.attempts(dead.dispatch_id)] == ["crashed"]


async def test_an_expired_item_with_a_cancel_request_is_cancelled_not_claimed(
    store: DispatchStore, clock: Clock
) -> None:
    record = await store.enqueue(item())
    after = await store.enqueue(item(text="after"))
    await store.claim("w1", 5)
    await store.cancel(record.dispatch_id, "stop")
    clock.advance(6)
    [claimed] = await store.claim("w2", 5)
    assert claimed.dispatch_id == after.dispatch_id
    assert (await store.get(record.dispatch_id)).status == "cancelled"  # type: ignore[union-attr]


async def test_two_handles_on_one_store_never_claim_the_same_item(backend: Any) -> None:
    first = backend.new()
    second = backend.reopen(first)
    sessions = [f"s{n}" for n in range(8)]
    for n in range(120):
        await first.enqueue(item(session=sessions[n % 8], text=str(n)))
    claims: list[tuple[str, str]] = []
    running: dict[str, str] = {}

    async def worker(store: DispatchStore, name: str) -> None:
        while True:
            batch = await store.claim(name, LEASE, limit=3)
            if not batch:
                queued = await store.list(status="queued", limit=1)
                if not queued.dispatches and not running:
                    return
                await anyio.lowlevel.checkpoint()
                continue
            for record in batch:
                assert record.session_id not in running.values(), "two items of one session at once"
                running[record.dispatch_id] = record.session_id
                claims.append((record.dispatch_id, name))
            for record in batch:
                await anyio.lowlevel.checkpoint()
                del running[record.dispatch_id]
                assert await store.complete(record.dispatch_id, name, DispatchOutcome(text=name))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for n in range(2):
                group.start_soon(worker, first, f"first-{n}")
                group.start_soon(worker, second, f"second-{n}")
    assert len(claims) == 120 == len({dispatch_id for dispatch_id, _ in claims})
    records = await all_records(first)
    assert all(r.status == "delivered" and r.attempts == 1 for r in records)
    order = defaultdict(list)
    for dispatch_id, _ in claims:
        order[next(r.session_id for r in records if r.dispatch_id == dispatch_id)].append(dispatch_id)
    for session in sessions:
        assert order[session] == [r.dispatch_id for r in records if r.session_id == session]


# -- random interleavings keep the invariants ------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("enqueue"), st.integers(0, 2), st.none() | st.sampled_from(["k1", "k2", "k3"])),
    st.tuples(st.just("claim"), st.integers(0, 1), st.integers(1, 3)),
    st.tuples(st.just("complete"), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("fail"), st.integers(0, 1), st.integers(0, 5), st.sampled_from([None, 0.0, 5.0])),
    st.tuples(st.just("finish_cancelled"), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 6.0, 31.0])),
)


@settings(_HYPOTHESIS, max_examples=40)
@given(ops=st.lists(_op, max_size=40))
def test_random_interleavings_keep_order_and_lose_nothing(
    backend: Any, anyio_backend: str, ops: list[tuple[Any, ...]]
) -> None:
    anyio.run(_interleave, backend, ops, backend=anyio_backend)


async def _interleave(backend: Any, ops: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    store = backend.new(clock)
    accepted: list[str] = []  # acceptance order
    session_of: dict[str, str] = {}
    held: dict[str, list[str]] = {"w0": [], "w1": []}
    started: dict[str, list[str]] = defaultdict(list)  # per session, in the order items were claimed

    async def check() -> None:
        records = {r.dispatch_id: r for r in await all_records(store)}
        assert list(records) == accepted  # nothing lost, nothing invented, acceptance order kept
        busy: dict[str, str] = {}
        for dispatch_id in accepted:
            record = records[dispatch_id]
            if record.status == "running":
                assert record.session_id not in busy, "two running items in one session"
                busy[record.session_id] = dispatch_id
                earlier = accepted[: accepted.index(dispatch_id)]
                assert all(records[e].finished for e in earlier if session_of[e] == record.session_id)

    async def finish(op: str, worker: str, pick: int, *rest: Any) -> None:
        if not held[worker]:
            return
        dispatch_id = held[worker][pick % len(held[worker])]
        before = await store.get(dispatch_id)
        assert before is not None
        holds = before.status == "running" and before.worker == worker
        if op == "complete":
            after = await store.complete(dispatch_id, worker, DispatchOutcome(text="ok"))
        elif op == "fail":
            after = await store.fail(dispatch_id, worker, {"type": "E", "message": "m"}, rest[0])
        else:
            after = await store.finish_cancelled(dispatch_id, worker)
        assert (after is not None) == holds
        held[worker].remove(dispatch_id)

    for op in ops:
        kind = op[0]
        if kind == "enqueue":
            key = None if op[2] is None else f"{op[2]} of s{op[1]}"  # a key names one target
            record = await store.enqueue(item(session=f"s{op[1]}", key=key))
            if record.dispatch_id not in session_of:
                accepted.append(record.dispatch_id)
                session_of[record.dispatch_id] = record.session_id
        elif kind == "claim":
            worker = f"w{op[1]}"
            batch = await store.claim(worker, LEASE, limit=op[2])
            assert len({r.session_id for r in batch}) == len(batch)
            for record in batch:
                held[worker].append(record.dispatch_id)
                if record.attempts == 1 or record.dispatch_id not in started[record.session_id]:
                    started[record.session_id].append(record.dispatch_id)
        elif kind in ("complete", "fail", "finish_cancelled"):
            await finish(kind, f"w{op[1]}", *op[2:])
        elif kind == "cancel" and accepted:
            await store.cancel(accepted[op[1] % len(accepted)], "cancelled by the test")
        elif kind == "tick":
            clock.advance(op[1])
        await check()

    # drain: every item ends, and sessions started their items in acceptance order
    clock.advance(10_000)
    for _ in range(len(accepted) * 4 + 1):
        batch = await store.claim("drain", LEASE, limit=10)
        if not batch:
            break
        for record in batch:
            if record.dispatch_id not in started[record.session_id]:
                started[record.session_id].append(record.dispatch_id)
            assert await store.complete(record.dispatch_id, "drain", DispatchOutcome())
        await check()
    records = {r.dispatch_id: r for r in await all_records(store)}
    assert all(r.finished for r in records.values())
    for session, order in started.items():
        in_session = [d for d in accepted if session_of[d] == session]
        assert order == sorted(order, key=in_session.index)
    await store.aclose()


# -- listing ---------------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_filters(store: DispatchStore) -> None:
    made = [await store.enqueue(item(session=f"s{n % 3}", text=str(n))) for n in range(10)]
    [claimed] = await store.claim("w", LEASE, limit=1)
    page = await store.list(limit=4)
    assert [r.input for r in page] == ["9", "8", "7", "6"] and page.next_cursor is not None
    rest = await store.list(limit=100, cursor=page.next_cursor)
    assert [r.input for r in rest] == [str(n) for n in range(5, -1, -1)] and rest.next_cursor is None
    s1 = await store.list(agent="agent", instance_id="inst", session_id="s1")
    assert [r.input for r in s1] == ["7", "4", "1"]
    assert [r.dispatch_id for r in await store.list(status="running")] == [claimed.dispatch_id]
    assert len(await store.list(status="queued", limit=100)) == 9
    assert len(await store.list(agent="other")) == 0
    assert made[0].dispatch_id == claimed.dispatch_id
    with pytest.raises(ConfigError, match="unknown dispatch status"):
        await store.list(status="done")
    with pytest.raises(ConfigError, match="cursor"):
        await store.list(cursor="not-a-cursor")
    with pytest.raises(ConfigError, match="limit"):
        await store.list(limit=0)


# -- events ----------------------------------------------------------------------------------------


async def test_events_read_back_in_seq_order(store: DispatchStore) -> None:
    record = await store.enqueue(item())
    other = await store.enqueue(item(session="other"))

    def event(seq: int, kind: str = "text_delta") -> Event:
        return Event(kind, {"text": f"t{seq}", "odd": object()}, seq, None, "agent", "inst", "s", "op")

    await store.append_events(record.dispatch_id, [event(1, "operation_start"), event(2), event(3)])
    await store.append_events(record.dispatch_id, [event(5), event(9, "operation_end")])
    await store.append_events(other.dispatch_id, [event(1)])
    await store.append_events(record.dispatch_id, [])
    events = await store.read_events(record.dispatch_id)
    assert [e.seq for e in events] == [1, 2, 3, 5, 9]
    assert events[0].type == "operation_start" and events[1].data["text"] == "t2"
    assert events[1].data["odd"].startswith("<object")  # what JSON cannot hold is kept as its repr
    assert events[0].operation_id == "op" and events[0].instance_id == "inst"
    assert [e.seq for e in await store.read_events(record.dispatch_id, after_seq=3)] == [5, 9]
    assert [e.seq for e in await store.read_events(record.dispatch_id, after_seq=1, limit=2)] == [2, 3]
    assert await store.read_events("dispatch:missing") == []
    with pytest.raises(ConfigError, match="seq"):
        await store.append_events(record.dispatch_id, [event(9)])
    with pytest.raises(ConfigError, match="seq"):
        await store.append_events(other.dispatch_id, [event(3), event(2)])
    assert [e.seq for e in await store.read_events(other.dispatch_id)] == [1]  # nothing half-written
    with pytest.raises(NotFoundError):
        await store.append_events("dispatch:missing", [event(1)])


# -- change notification ---------------------------------------------------------------------------


async def test_wait_changed_wakes_on_writes_of_this_and_other_handles(backend: Any) -> None:
    store = backend.new()
    other = backend.reopen(store)
    assert not await store.wait_changed(0.02)
    for writer in (store, other):
        woke: list[bool] = []

        async def wait(woke: list[bool] = woke) -> None:
            woke.append(await store.wait_changed(30))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.05)
            await writer.enqueue(item())
        assert woke == [True]


# -- processes -------------------------------------------------------------------------------------


def test_processes_claiming_one_sqlite_file_keep_leases_and_order(tmp_path: Path) -> None:
    """Three claimer processes on one file; one is killed with SIGKILL while it holds leases.
    Every item ends delivered, no item had two live leases at once, and sessions kept their order."""
    db_path = tmp_path / "dispatch.db"
    lease = 1.0
    sessions = [f"session {n}" for n in range(10)]

    async def fill() -> list[DispatchRecord]:
        db = SQLiteDatabase(db_path)
        store = SQLiteDispatchStore(db)
        made = [await store.enqueue(item(session=sessions[n % 10], text=str(n))) for n in range(300)]
        db.close()
        return made

    made = anyio.run(fill)
    script = Path(__file__).with_name("dispatch_claimer.py")
    logs = [tmp_path / f"worker-{n}.jsonl" for n in range(3)]
    specs = [("hang", "asyncio", "0", ["--hang"]), ("a", "asyncio", "0.002", []), ("b", "trio", "0.002", [])]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db_path), name, backend, str(lease), work, str(log), *extra]
        )
        for (name, backend, work, extra), log in zip(specs, logs, strict=True)
    ]
    try:
        deadline = time.monotonic() + 60
        while not (logs[0].exists() and logs[0].read_text().strip()):
            assert time.monotonic() < deadline, "the hanging worker never claimed"
            assert procs[0].poll() is None
            time.sleep(0.01)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        for proc in procs[1:]:
            assert proc.wait(timeout=120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async def read() -> tuple[list[DispatchRecord], dict[str, list[Any]]]:
        db = SQLiteDatabase(db_path)
        store = SQLiteDispatchStore(db)
        records = await all_records(store)
        attempts = {r.dispatch_id: await store.attempts(r.dispatch_id) for r in records}
        db.close()
        return records, attempts

    records, attempts = anyio.run(read)
    assert [r.dispatch_id for r in records] == [r.dispatch_id for r in made]
    assert all(r.status == "delivered" for r in records)
    claims = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    claimed = [(c["id"], c["attempt"]) for c in claims if c["step"] == "claim"]
    assert len(claimed) == len(set(claimed))  # no attempt was claimed by two processes
    hung = [json.loads(line)["id"] for line in logs[0].read_text().splitlines()]
    assert hung
    for record in records:
        tries = attempts[record.dispatch_id]
        assert [a.number for a in tries] == list(range(1, len(tries) + 1))
        assert tries[-1].status == "delivered" and tries[-1].worker in ("a", "b")
        for earlier, later in itertools.pairwise(tries):
            assert earlier.status == "crashed" and earlier.worker == "hang"
            # taken over only once the killed worker's lease had expired
            assert (later.started_at - earlier.started_at).total_seconds() >= lease
        assert (len(tries) > 1) == (record.dispatch_id in hung)
    for session in sessions:
        spans = [
            (a.started_at, a.ended_at)
            for r in records
            if r.session_id == session
            for a in attempts[r.dispatch_id]
        ]
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is not None and end <= start  # one at a time, in acceptance order
