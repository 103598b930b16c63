"""The RunJournalStore contract, run by every run store in ``BACKENDS``: steps with the events before
them in one write, the journal in recording order, and reopening an interrupted run by one client
only."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue.errors import NotFoundError
from pyflue.stores.runs import JournalStep, RunJournalStore, RunNotInterruptedError, RunStore
from tests.stores.conftest import Backend
from tests.stores.test_runs_contract import events, finished, record

_keys = itertools.count()


def journal_of(store: RunStore) -> RunJournalStore:
    assert isinstance(store, RunJournalStore)
    return store


async def interrupted(store: RunStore) -> str:
    """A run of ``store`` whose owner died (as a store records it), with three events."""
    run = record()
    await store.create_run(run)
    await store.append_events(run.run_id, events(run.run_id, 1, 3))
    error = {"type": "WorkflowError", "message": "gone", "reason": "owner_died"}
    await store.finish_run(finished(run, "interrupted", error=error))
    return run.run_id


async def test_a_step_is_written_with_the_events_before_it(run_store: RunStore) -> None:
    journal = journal_of(run_store)
    run = record()
    await run_store.create_run(run)
    await run_store.append_events(run.run_id, events(run.run_id, 1, 2))
    started = JournalStep("0", 0, "tool", "book", "f1", "started")
    await journal.record_step(run.run_id, started, events(run.run_id, 3, 2))
    done = JournalStep("0", 1, "tool", "book", "f1", "done", {"content": "ünï ✓", "n": [1, 2.5, None]})
    await journal.record_step(run.run_id, done, events(run.run_id, 5, 1))
    await journal.record_step(run.run_id, JournalStep("1", 2, "now", "now", "", "done", "2024-01-01"))
    assert [e.seq for e in await run_store.read_events(run.run_id)] == [1, 2, 3, 4, 5]
    assert await journal.read_journal(run.run_id) == [
        done,
        JournalStep("1", 2, "now", "now", "", "done", "2024-01-01"),
    ]
    assert await journal.read_journal("workflow:flow:missing") == []


async def test_only_an_interrupted_run_reopens_once(run_store: RunStore) -> None:
    journal = journal_of(run_store)
    run_id = await interrupted(run_store)
    before = await run_store.get_run(run_id)
    assert before is not None and before.status == "interrupted"
    assert await journal.reopen_run(run_id, 4242, "host-b") == before
    now = await run_store.get_run(run_id)
    assert now is not None and now.status == "running" and now.error is None
    assert (now.owner_pid, now.owner_host) == (4242, "host-b")
    with pytest.raises(RunNotInterruptedError, match="is running; only an interrupted run can be resumed"):
        await journal.reopen_run(run_id, 4243, "host-c")
    await run_store.finish_run(finished(now, result={"ok": True}))
    with pytest.raises(RunNotInterruptedError, match="is completed"):
        await journal.reopen_run(run_id, 4243, "host-c")
    with pytest.raises(NotFoundError):
        await journal.reopen_run("workflow:flow:missing", 1, "h")


async def test_of_clients_reopening_at_once_one_wins(backend: Backend) -> None:
    run_id = await interrupted(backend.runs())
    clients = [journal_of(backend.runs()) for _ in range(6 if backend.shared else 1)]
    won: list[int] = []
    lost: list[int] = []

    async def reopen(n: int, client: RunJournalStore) -> None:
        try:
            await client.reopen_run(run_id, 1000 + n, f"host-{n}")
            won.append(n)
        except RunNotInterruptedError:
            lost.append(n)

    async with anyio.create_task_group() as tg:
        for n, client in enumerate(clients):
            tg.start_soon(reopen, n, client)
    assert len(won) == 1 and len(lost) == len(clients) - 1
    now = await backend.runs().get_run(run_id)
    assert now is not None and now.owner_pid == 1000 + won[0]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_writes = st.lists(
    st.tuples(st.sampled_from(["0", "1", "1.0", "1.1", "2"]), st.sampled_from(["started", "done"]), _json),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=_writes)
def test_the_journal_holds_the_last_write_of_each_step_in_recording_order(
    module_backend: Backend, writes: list[tuple[str, str, Any]]
) -> None:
    async def check() -> None:
        store = module_backend.runs()
        journal = journal_of(store)
        run = record(f"j{next(_keys)}")
        await store.create_run(run)
        latest: dict[str, JournalStep] = {}
        for position, (key, status, result) in enumerate(writes):
            step = JournalStep(
                key, position, "step", f"s{key}", "", status, None if status == "started" else result
            )  # type: ignore[arg-type]
            await journal.record_step(run.run_id, step, events(run.run_id, position + 1, 1))
            latest[key] = step
        assert await journal.read_journal(run.run_id) == sorted(latest.values(), key=lambda s: s.position)
        assert [e.seq for e in await store.read_events(run.run_id)] == list(range(1, len(writes) + 1))

    anyio.run(check)
