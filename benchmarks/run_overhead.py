"""Workflow run overhead and event persistence throughput, with the SQLite run store.

    python benchmarks/run_overhead.py [--runs 300] [--events 100000] [--backend asyncio] [--json]

* **run overhead**: wall time of ``invoke_workflow`` for a workflow that returns ``{}`` at once:
  validation, the ``running`` record, ``run_start``/``run_end``, the flusher and cancel poller,
  the final flush and record (two SQLite write transactions in worker threads).
* **persisted events/s**: one run emitting ``--events`` custom events (a checkpoint every 256,
  as real agent code awaits between events); timed from the call to the return of
  ``invoke_workflow``, so the final flush is included. The store is then checked: every event is
  there with contiguous per-run ``seq``, so the figure is for a complete, ordered log.

``measure()`` returns the figures as a dict (``--json`` prints it) for the benchmark harness.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio

WORKFLOWS = {
    "empty": "async def run(ctx):\n    return {}\n",
    "burst": textwrap.dedent(
        """\
        import anyio.lowlevel

        async def run(ctx):
            for i in range(ctx.payload["events"]):
                ctx.emit("tick", {"i": i})
                if i % 256 == 0:
                    await anyio.lowlevel.checkpoint()
            return {"emitted": ctx.payload["events"]}
        """
    ),
}


def _project(root: Path) -> Path:
    for name, source in WORKFLOWS.items():
        path = root / "workflows" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


async def _overhead(root: Path, runs: int) -> dict[str, float]:
    from pyflue import Project

    project = Project.load(root)
    for _ in range(20):  # warm up: imports, the connection, the thread pool
        await project.run("empty", {})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        record = await project.run("empty", {})
        times.append((time.perf_counter() - started) * 1000)
        assert record.status == "completed"
    times.sort()
    return {
        "runs": runs,
        "mean_ms": round(statistics.fmean(times), 3),
        "p50_ms": round(times[len(times) // 2], 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
        "runs_per_s": round(runs / (sum(times) / 1000), 1),
    }


async def _throughput(root: Path, events: int) -> dict[str, float]:
    from pyflue import Project

    project = Project.load(root)
    await project.run("burst", {"events": 1000})  # warm up
    started = time.perf_counter()
    record = await project.run("burst", {"events": events})
    elapsed = time.perf_counter() - started
    assert record.status == "completed", record.error

    stored = await project.run_store.read_events(record.run_id)  # read back: complete and ordered?
    assert [e.seq for e in stored] == list(range(1, events + 3))
    assert [e.data["i"] for e in stored[1:-1]] == list(range(events))
    return {
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "db_bytes": (root / ".pyflue" / "pyflue.db").stat().st_size,
    }


def measure(runs: int = 300, events: int = 100_000, backend: str = "asyncio") -> dict[str, Any]:
    """Both figures, each in a fresh project directory (SQLite in WAL mode, as shipped)."""

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            overhead = await _overhead(_project(Path(one)), runs)
            throughput = await _throughput(_project(Path(two)), events)
        return {"backend": backend, "run_overhead": overhead, "persisted_events": throughput}

    return anyio.run(main, backend=backend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.runs, args.events, args.backend)
    if args.json:
        print(json.dumps(figures))
        return 0
    overhead, throughput = figures["run_overhead"], figures["persisted_events"]
    print(f"backend {figures['backend']}, SQLite run store")
    print(
        f"empty workflow run: mean {overhead['mean_ms']} ms, p50 {overhead['p50_ms']} ms, "
        f"p95 {overhead['p95_ms']} ms ({overhead['runs_per_s']} runs/s sequentially, {overhead['runs']} runs)"
    )
    print(
        f"persisted events: {throughput['events_per_s']:,} events/s "
        f"({throughput['events']:,} events in {throughput['seconds']} s, complete and in order)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
