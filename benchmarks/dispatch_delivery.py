"""End-to-end delivered dispatches per second, with 1 and 2 worker processes on one SQLite file.

    python benchmarks/dispatch_delivery.py [--items 2000] [--sessions 20] [--concurrency 10]
                                           [--backend asyncio|trio] [--accept]

Each row makes a fresh project whose agent answers ``echo: <input>`` through a ``FunctionModel``
(no network, no sleep: the cost measured is PyFlue's), dispatches ``--items`` inputs spread over
``--sessions`` sessions of one instance, then starts the worker processes (``Dispatcher(project,
concurrency=...)``, one per process). The rate is the items over the time from the first attempt's
start to the last delivery, both read from the dispatch store, so process start-up is not counted.
Every delivery is a full operation: claim, session turn (lease, load, append), model call, event
log, completion. ``--accept`` also runs ``benchmarks/dispatch_accept.py`` (accepted/s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from pyflue import Dispatcher, Runtime, dispatch, list_dispatches
from pyflue.dispatching import dispatch_store
from pyflue.stores.dispatches import DispatchRecord

_AGENT = """
from pyflue import create_agent
from pyflue.models.messages import text_of
from pyflue.models.testing import FunctionModel


def reply(request):
    return f"echo: {text_of(request.messages[-1])}"


default = create_agent(lambda ctx: {"model": FunctionModel(reply)})
"""


async def _fill(project: Path, items: int, sessions: int) -> None:
    async def one_session(k: int) -> None:
        for n in range(k, items, sessions):
            await dispatch("echo", id="bench", session=f"s{k}", input=f"m{n}", project=project)

    async with Runtime(), anyio.create_task_group() as group:
        for k in range(sessions):
            group.start_soon(one_session, k)


async def _idle(project: Path) -> bool:
    for status in ("queued", "running"):
        if len(await list_dispatches(status=status, limit=1, project=project)):
            return False
    return True


async def _work(project: Path, concurrency: int) -> None:
    """One worker process: deliver until nothing is queued or running."""
    async with Runtime(), Dispatcher(project, concurrency=concurrency, poll_interval=0.05) as worker:
        while not await _idle(project):
            await worker.store.wait_changed(0.2)


async def _rate(project: Path) -> tuple[int, float]:
    """(delivered items, seconds from the first attempt's start to the last delivery)."""
    async with Runtime():
        store = dispatch_store(project)
        records: list[DispatchRecord] = []
        cursor = None
        while True:
            page = await list_dispatches(limit=1000, cursor=cursor, project=project)
            records.extend(page)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        delivered = [r for r in records if r.status == "delivered"]
        starts = [a.started_at for r in records for a in await store.attempts(r.dispatch_id)]
        return len(delivered), (max(r.updated_at for r in delivered) - min(starts)).total_seconds()


def _row(directory: Path, workers: int, args: argparse.Namespace) -> tuple[int, float]:
    project = directory / f"project-{workers}"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "echo.py").write_text(_AGENT)
    anyio.run(_fill, project, args.items, args.sessions, backend=args.backend)
    command = [sys.executable, __file__, "--worker", str(project), "--concurrency", str(args.concurrency)]
    command += ["--backend", args.backend]
    processes = [subprocess.Popen(command) for _ in range(workers)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker exited with {process.returncode}")
    return anyio.run(_rate, project, backend=args.backend)


def main(args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load}; "
        f"{args.items} items over {args.sessions} sessions, concurrency {args.concurrency} per worker, "
        f"{args.backend}\n"
    )
    print(f"{'workers':>7} {'delivered':>9} {'seconds':>8} {'delivered/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            delivered, seconds = _row(Path(tmp), workers, args)
            print(f"{workers:>7} {delivered:>9} {seconds:>8.2f} {delivered / seconds:>12,.0f}")
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.accept:
        print()
        subprocess.run([sys.executable, str(Path(__file__).with_name("dispatch_accept.py"))], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--accept", action="store_true", help="also run dispatch_accept.py")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker is not None:
        anyio.run(_work, arguments.worker, arguments.concurrency, backend=arguments.backend)
    else:
        began = time.perf_counter()
        main(arguments)
        print(f"\n(total {time.perf_counter() - began:.0f} s)")
