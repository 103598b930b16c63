"""What the journal of a resumable run costs: µs and bytes per journaled model call and tool call
(SQLite run store, one write per step), and the time to replay a run of 100 journaled model calls.

    python -m benchmarks.journal_cost
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from pyflue.journal import RunJournal
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import TextPart, ToolCallPart, ToolResultPart, UserMessage
from pyflue.stores.sqlite.runs import SQLiteRunStore

N = 300


async def main() -> None:
    from pyflue.models.testing import FunctionModel

    model = FunctionModel(lambda request: "ok")
    request = ModelRequest([UserMessage([TextPart("hello " * 200)])], "be brief")
    response = ModelResponse([TextPart("an answer " * 20)], Usage(100, 20, 0, 0, 1))
    call = ToolCallPart("c1", "book", {"item": "hotel"})
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteRunStore(Path(tmp) / "bench.db") as store:
            journal = RunJournal(store, "run-bench")

            async def respond() -> ModelResponse:
                return response

            async def tool() -> ToolResultPart:
                return ToolResultPart("c1", "book", "ref-hotel")

            with journal.active():
                await journal.model_call(model, request, respond)  # warm up
                started = time.perf_counter()
                for _ in range(N):
                    await journal.model_call(model, request, respond)
                model_us = (time.perf_counter() - started) / N * 1e6
                started = time.perf_counter()
                for _ in range(N):
                    (key,) = journal.keys()
                    await journal.tool_call(key, call, False, tool)
                tool_us = (time.perf_counter() - started) / N * 1e6
            steps = await store.read_journal("run-bench")
            model_bytes = [len(repr(s.result)) for s in steps if s.kind == "model"]
            tool_bytes = [len(repr(s.result)) for s in steps if s.kind == "tool"]
            replay = RunJournal(store, "run-bench", steps[:100])
            started = time.perf_counter()
            with replay.active():
                for _ in range(100):
                    await replay.model_call(model, request, respond)
            replay_ms = (time.perf_counter() - started) * 1000
    print(f"model call journaled: {model_us:.0f} µs, ~{sum(model_bytes) // len(model_bytes)} B of result")
    print(
        f"tool call journaled:  {tool_us:.0f} µs (2 writes: started, done), "
        f"~{sum(tool_bytes) // len(tool_bytes)} B"
    )
    print(f"replay of 100 journaled model calls: {replay_ms:.1f} ms")


if __name__ == "__main__":
    anyio.run(main)
