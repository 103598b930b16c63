"""What the journal of a resumable run costs, SQLite beside PostgreSQL: µs and stored bytes per
journaled model call and tool call, and the time to resume a run of 100 journaled model calls.

    python benchmarks/journal_cost.py [--url postgresql://...] [--backend asyncio|trio]

Without ``--url`` it starts a throwaway PostgreSQL cluster with the server's default durability (every
commit flushed to disk), as benchmarks/postgres_stores.py does; SQLite runs as the project database
does (WAL, ``synchronous=NORMAL``). Each journaled step is written as a run writes it: together with
the run's events emitted before it (three per model call: start, a delta, end; two per tool call), in
one transaction. A model call is one write; a tool call two (``started``, then ``done``). Resume: read
the journal, reopen the run, and replay its 100 model calls from the journal.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.postgres.server

from pyflue.events import Event
from pyflue.journal import RunJournal
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import TextPart, ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel
from pyflue.recording import EventRecorder
from pyflue.stores.postgres import PostgresDatabase
from pyflue.stores.run_encoding import json_bytes
from pyflue.stores.runs import RunJournalStore, RunRecord, RunStore
from pyflue.stores.sqlite import SQLiteRunStore
from tests.postgres.server import Cluster, find_bindir

N = 200
STEPS = 100

MODEL = FunctionModel(lambda request: "ok")
REQUEST = ModelRequest([UserMessage([TextPart("hello " * 200)])], "be brief")
RESPONSE = ModelResponse([TextPart("an answer " * 20)], Usage(100, 20, 0, 0, 1))
CALL = ToolCallPart("c1", "book", {"item": "hotel"})


async def _respond() -> ModelResponse:
    return RESPONSE


async def _tool() -> ToolResultPart:
    return ToolResultPart("c1", "book", "ref-hotel")


class _Log:
    """The run's event numbering and its recorder (whose pending events each step commits)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.run_id = run_id
        self.seq = 0
        self.recorder = EventRecorder(functools.partial(store.append_events, run_id), run_id)

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.recorder(Event(type, data, self.seq, self.run_id))


async def _new_run(store: RunStore, run_id: str) -> tuple[RunJournal, _Log]:
    await store.create_run(
        RunRecord(run_id=run_id, workflow="bench", started_at=datetime.now(UTC), owner_pid=1)
    )
    assert isinstance(store, RunJournalStore)
    log = _Log(store, run_id)
    journal = RunJournal(store, run_id)
    journal.record_events(log.recorder)
    return journal, log


async def measure(store: RunStore, name: str) -> dict[str, str]:
    journal, log = await _new_run(store, f"{name}-calls")
    with journal.active():
        started = time.perf_counter()
        for _ in range(N):
            log.emit("model_start", {"provider": "test", "model": "m"})
            log.emit("text_delta", {"text": "an answer"})
            log.emit("model_end", {"usage": RESPONSE.usage.to_dict()})
            await journal.model_call(MODEL, REQUEST, _respond)
        model_us = (time.perf_counter() - started) / N * 1e6
        started = time.perf_counter()
        for _ in range(N):
            log.emit("tool_start", {"tool": "book", "args": CALL.args})
            log.emit("tool_end", {"tool": "book", "result": "ref-hotel"})
            (key,) = journal.keys()
            await journal.tool_call(key, CALL, False, _tool)
        tool_us = (time.perf_counter() - started) / N * 1e6
    assert isinstance(store, RunJournalStore)
    steps = await store.read_journal(f"{name}-calls")
    model_bytes = max(len(json_bytes(s.result)) + len(s.fingerprint) for s in steps if s.kind == "model")
    tool_bytes = max(len(json_bytes(s.result)) + len(s.fingerprint) for s in steps if s.kind == "tool")

    run_id = f"{name}-resume"
    journal, log = await _new_run(store, run_id)
    with journal.active():
        for _ in range(STEPS):
            await journal.model_call(MODEL, REQUEST, _respond)
    record = await store.get_run(run_id)
    assert record is not None
    await store.finish_run(record.model_copy(update={"status": "interrupted", "ended_at": datetime.now(UTC)}))
    started = time.perf_counter()
    recorded = await store.read_journal(run_id)
    await store.reopen_run(run_id, 2, "bench")
    replay = RunJournal(store, run_id, recorded)
    with replay.active():
        for _ in range(STEPS):
            await replay.model_call(MODEL, REQUEST, _respond)
    resume_ms = (time.perf_counter() - started) * 1000
    assert replay.replayed == STEPS
    return {
        "model call: µs (1 write, 3 events)": f"{model_us:.0f}",
        "model call: stored bytes": f"{model_bytes}",
        "tool call: µs (2 writes, 2 events)": f"{tool_us:.0f}",
        "tool call: stored bytes": f"{tool_bytes}",
        f"resume of {STEPS} journaled steps: ms": f"{resume_ms:.1f}",
    }


async def main(url: str, directory: Path) -> None:
    async with SQLiteRunStore(directory / "bench.db") as lite:
        sqlite = await measure(lite, "sqlite")
    async with PostgresDatabase(url, schema="journal_bench") as db:
        await db.upgrade()
        postgres = await measure(db.run_store(), "postgres")
    print(f"{'':40} {'SQLite':>10} {'PostgreSQL':>12}")
    for row, value in sqlite.items():
        print(f"{row:40} {value:>10} {postgres[row]:>12}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway durable cluster)")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        cluster = Cluster(find_bindir())
        cluster.start(durable=True)
        url = cluster.url
    try:
        with tempfile.TemporaryDirectory() as directory:
            anyio.run(main, url, Path(directory), backend=args.backend)
    finally:
        if cluster is not None:
            cluster.stop()
