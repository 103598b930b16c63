"""The RunStore contract, run by every implementation in ``BACKENDS`` (tests/stores/conftest.py):
records, event logs, pages, cancel requests, retention, and two clients of one storage."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue.errors import ConfigError, NotFoundError
from pyflue.events import Event
from pyflue.models.base import Usage
from pyflue.stores.liveness import hostname
from pyflue.stores.runs import RunRecord, RunStore, usage_of
from tests.stores.conftest import Backend

_runs = itertools.count()


def record(workflow: str = "flow", status: str = "running", **fields: Any) -> RunRecord:
    return RunRecord.model_validate(
        {
            "run_id": f"workflow:{workflow}:{next(_runs):08d}",
            "workflow": workflow,
            "status": status,
            "started_at": datetime.now(UTC),
            "owner_pid": os.getpid(),
            "owner_host": hostname(),
            **fields,
        }
    )


def events(run_id: str, first: int, count: int, type: str = "tick") -> list[Event]:
    return [Event(type, {"i": seq, "text": "ünï ✓"}, seq, run_id) for seq in range(first, first + count)]


def finished(run: RunRecord, status: str = "completed", **fields: Any) -> RunRecord:
    now = datetime.now(UTC)
    return run.model_copy(update={"status": status, "ended_at": now, "duration_ms": 1.5, **fields})


async def test_store_satisfies_the_protocol(run_store: RunStore) -> None:
    assert isinstance(run_store, RunStore)


async def test_records_round_trip_and_ids_are_unique(run_store: RunStore) -> None:
    run = record(payload={"x": [1, "two", None]})
    await run_store.create_run(run)
    assert await run_store.get_run(run.run_id) == run
    assert await run_store.get_run("workflow:flow:missing") is None
    with pytest.raises(ConfigError, match="already exists"):
        await run_store.create_run(run)
    done = finished(run, result={"ok": True}, usage=Usage(3, 4, requests=1))
    await run_store.finish_run(done)
    stored = await run_store.get_run(run.run_id)
    assert stored == done and stored is not None and stored.finished


async def test_event_logs_keep_order_ids_and_times(run_store: RunStore) -> None:
    run = record()
    await run_store.create_run(run)
    written = events(run.run_id, 1, 5) + events(run.run_id, 6, 3000)
    await run_store.append_events(run.run_id, written[:5])
    await run_store.append_events(run.run_id, written[5:])
    await run_store.append_events(run.run_id, [])
    read = await run_store.read_events(run.run_id)
    assert read == written  # type, seq, data, event id and time alike
    assert [e.event_id for e in read] == [e.event_id for e in written]
    assert await run_store.read_events(run.run_id, after_seq=2, limit=2) == written[2:4]
    assert await run_store.read_events(run.run_id, after_seq=1500, limit=3) == written[1500:1503]
    assert await run_store.read_events(run.run_id, after_seq=3005) == []
    assert await run_store.read_events("workflow:flow:missing") == []


async def test_finishing_writes_the_last_events_with_the_record(run_store: RunStore) -> None:
    run = record()
    await run_store.create_run(run)
    await run_store.append_events(run.run_id, events(run.run_id, 1, 2))
    end = Event("run_end", {"status": "completed"}, 3, run.run_id)
    await run_store.finish_run(finished(run), [end])
    log = await run_store.read_events(run.run_id)
    assert [e.seq for e in log] == [1, 2, 3] and log[-1] == end
    stored = await run_store.get_run(run.run_id)
    assert stored is not None and stored.status == "completed"


async def test_pages_are_newest_first_filtered_and_resumable(run_store: RunStore) -> None:
    made = [record("a" if i % 3 else "b", "completed" if i % 2 else "failed") for i in range(7)]
    for run in made:
        await run_store.create_run(run)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await run_store.list_runs(limit=3, cursor=cursor)
        seen += [r.run_id for r in page]
        await run_store.create_run(record("a"))  # started meanwhile: never on a later page
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.run_id for r in reversed(made)]
    only_b = await run_store.list_runs(workflow="b", status="failed")
    assert [r.run_id for r in only_b] == [
        r.run_id for r in reversed(made) if r.workflow == "b" and r.status == "failed"
    ]
    with pytest.raises(ConfigError, match="cursor"):
        await run_store.list_runs(cursor="nonsense")


async def test_cancel_requests_reach_running_runs_only(run_store: RunStore) -> None:
    run = record()
    await run_store.create_run(run)
    assert await run_store.cancel_requested(run.run_id) is None
    assert await run_store.request_cancel(run.run_id, "user asked") is True
    assert await run_store.cancel_requested(run.run_id) == "user asked"
    await run_store.finish_run(finished(run, "cancelled"))
    assert await run_store.cancel_requested(run.run_id) is None
    assert await run_store.request_cancel(run.run_id, "again") is False
    with pytest.raises(NotFoundError):
        await run_store.request_cancel("workflow:flow:missing", "x")


async def test_prune_deletes_old_finished_runs_and_their_logs_only(run_store: RunStore) -> None:
    old, recent, running = record(), record(), record()
    for run in (old, recent, running):
        await run_store.create_run(run)
        await run_store.append_events(run.run_id, events(run.run_id, 1, 2))
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    await run_store.finish_run(finished(old).model_copy(update={"ended_at": long_ago}))
    await run_store.finish_run(finished(recent))
    assert await run_store.prune_runs(3600) == 1
    assert await run_store.get_run(old.run_id) is None
    assert await run_store.read_events(old.run_id) == []
    assert await run_store.get_run(recent.run_id) is not None
    assert (await run_store.get_run(running.run_id)) == running
    assert await run_store.recover_interrupted() == []  # this process is alive


async def test_two_clients_of_one_storage_share_runs(backend: Backend) -> None:
    writer, reader = backend.runs(), backend.runs()
    run = record()
    await writer.create_run(run)
    await writer.append_events(run.run_id, events(run.run_id, 1, 3))
    assert await reader.get_run(run.run_id) == run
    assert [e.event_id for e in await reader.read_events(run.run_id)] == [
        e.event_id for e in await writer.read_events(run.run_id)
    ]
    assert await reader.request_cancel(run.run_id, "from the other client")
    assert await writer.cancel_requested(run.run_id) == "from the other client"


def test_usage_of_adds_up_model_calls_only() -> None:
    log = [
        Event("model_end", {"usage": Usage(1, 2, requests=1).to_dict()}, 1),
        Event("tool_end", {"usage": Usage(100).to_dict()}, 2),
        Event("model_end", {"usage": None}, 3),
        Event("model_end", {"usage": Usage(3, 4, 5, 6, 1).to_dict()}, 4),
    ]
    assert usage_of(log) == Usage(4, 6, 5, 6, 2)
    assert usage_of(log[3:], Usage(1, 2, requests=1)) == Usage(4, 6, 5, 6, 2)
    assert usage_of([]) == Usage()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
run_ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_id=run_ids, payload=json_values, data=st.lists(st.dictionaries(st.text(max_size=5), json_values)))
def test_any_run_id_payload_and_event_data_round_trip(
    module_backend: Backend, run_id: str, payload: Any, data: list[dict[str, Any]]
) -> None:
    store = module_backend.runs()
    run_id = f"{next(_runs)}:{run_id}"  # the examples share one storage
    run = record(payload=payload).model_copy(update={"run_id": run_id})
    log = [Event("custom", item, seq, run_id) for seq, item in enumerate(data, 1)]

    async def main() -> None:
        await store.create_run(run)
        await store.append_events(run_id, log)
        assert await store.get_run(run_id) == run
        assert await store.read_events(run_id) == log

    anyio.run(main)
