"""A scaling curve: accepted and delivered dispatches per second with 1, 2 and 4 processes, on PostgreSQL
and on SQLite, in the same run.

    python benchmarks/dispatch_delivery.py [--items 2000] [--sessions 40] [--concurrency 10]
                                           [--processes 1,2,4] [--databases postgres,sqlite]
                                           [--url postgresql://...] [--backend asyncio|trio] [--accept]

Each row makes a fresh project (and, for PostgreSQL, a fresh database) whose agent answers
``echo: <input>`` through a ``FunctionModel`` (no network, no sleep: the cost measured is PyFlue's).

* **accepted/s**: ``k`` processes each ``dispatch()`` their share of ``--items`` inputs from 50 concurrent
  callers (each receipt after its own commit; a process group-commits its concurrent calls). The rate is
  the items over the span of their ``accepted_at`` times read back from the store, so process start-up
  is not counted.
* **delivered/s**: then ``k`` worker processes (``Dispatcher(project, concurrency=...)`` each) deliver
  them; the rate is the items over the time from the first attempt's start to the last delivery. Every
  delivery is a full operation: claim, session turn (lease, load, append), model call, event log,
  completion.

Without ``--url`` PostgreSQL is a throwaway cluster started here (``tests/postgres/server.py``'s
``Cluster``, with the server's default durability: every commit flushed). SQLite runs as the project
database does (WAL, ``synchronous=NORMAL``). The load average is printed before and after: on a shared
machine it says how far the figures are from a quiet one's. ``--accept`` also runs
``benchmarks/dispatch_accept.py`` (store-level accept rates).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import anyio
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.postgres.server

from pyflue import Dispatcher, Runtime, dispatch, list_dispatches
from pyflue.dispatching import dispatch_store
from pyflue.stores.dispatches import DispatchRecord
from tests.postgres.server import Cluster, find_bindir

_AGENT = """
from pyflue import create_agent
from pyflue.models.messages import text_of
from pyflue.models.testing import FunctionModel


def reply(request):
    return f"echo: {text_of(request.messages[-1])}"


default = create_agent(lambda ctx: {"model": FunctionModel(reply)})
"""
_CALLERS = 50  # concurrent dispatch() calls in each accepting process


async def _fill(project: Path, items: int, sessions: int, part: int, parts: int) -> None:
    """One accepting process: its share of the items, over its share of the sessions."""
    mine = [n for n in range(items) if n % parts == part]

    async def caller(k: int) -> None:
        for n in mine[k::_CALLERS]:
            await dispatch("echo", id="bench", session=f"s{n % sessions}", input=f"m{n}", project=project)

    async with Runtime(), anyio.create_task_group() as group:
        for k in range(_CALLERS):
            group.start_soon(caller, k)


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


async def _records(project: Path) -> list[DispatchRecord]:
    records: list[DispatchRecord] = []
    cursor = None
    while True:
        page = await list_dispatches(limit=1000, cursor=cursor, project=project)
        records.extend(page)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


def _span(times: list[datetime]) -> float:
    return (max(times) - min(times)).total_seconds()


async def _accept_rate(project: Path) -> tuple[int, float]:
    """(accepted items, seconds from the first acceptance to the last)."""
    async with Runtime():
        records = await _records(project)
        return len(records), _span([r.accepted_at for r in records])


async def _delivery_rate(project: Path) -> tuple[int, float]:
    """(delivered items, seconds from the first attempt's start to the last delivery)."""
    async with Runtime():
        store = dispatch_store(project)
        records = await _records(project)
        delivered = [r for r in records if r.status == "delivered"]
        starts = [a.started_at for r in records for a in await store.attempts(r.dispatch_id)]
        return len(delivered), (max(r.updated_at for r in delivered) - min(starts)).total_seconds()


def _processes(command: list[str], count: int, env: dict[str, str]) -> None:
    running = [subprocess.Popen(command, env=env) for _ in range(count)]
    for k, process in enumerate(running):
        if process.wait() != 0:
            raise SystemExit(f"process {k} of {command[2:4]} exited with {process.returncode}")


def _row(project: Path, processes: int, args: argparse.Namespace, env: dict[str, str]) -> list[float]:
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "echo.py").write_text(_AGENT)
    me = [sys.executable, __file__, "--backend", args.backend]
    fills = [
        subprocess.Popen(
            [*me, "--fill", str(project), "--part", str(k), "--of", str(processes), *_sizes(args)], env=env
        )
        for k in range(processes)
    ]
    for process in fills:
        if process.wait() != 0:
            raise SystemExit(f"an accepting process exited with {process.returncode}")
    accepted, accept_s = _with_env(env, _accept_rate, project, args.backend)
    _processes([*me, "--worker", str(project), "--concurrency", str(args.concurrency)], processes, env)
    delivered, deliver_s = _with_env(env, _delivery_rate, project, args.backend)
    if accepted != args.items or delivered != args.items:
        raise SystemExit(f"{accepted} accepted and {delivered} delivered of {args.items}")
    return [accepted / accept_s, delivered / deliver_s]


def _sizes(args: argparse.Namespace) -> list[str]:
    return ["--items", str(args.items), "--sessions", str(args.sessions)]


def _with_env(
    env: dict[str, str], fn: Callable[[Path], Awaitable[tuple[int, float]]], project: Path, backend: str
) -> tuple[int, float]:
    saved = os.environ.get("PYFLUE_DATABASE_URL")
    if "PYFLUE_DATABASE_URL" in env:
        os.environ["PYFLUE_DATABASE_URL"] = env["PYFLUE_DATABASE_URL"]
    else:
        os.environ.pop("PYFLUE_DATABASE_URL", None)
    try:
        return anyio.run(fn, project, backend=backend)
    finally:
        if saved is None:
            os.environ.pop("PYFLUE_DATABASE_URL", None)
        else:
            os.environ["PYFLUE_DATABASE_URL"] = saved


def _new_database(url: str, name: str) -> str:
    """A fresh database of the server at ``url``; its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(args: argparse.Namespace) -> None:
    counts = [int(k) for k in args.processes.split(",")]
    databases = args.databases.split(",")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {_load()}; "
        f"{args.items} items over {args.sessions} sessions, {_CALLERS} callers per accepting process, "
        f"concurrency {args.concurrency} per worker, {args.backend}\n"
    )
    cluster = None
    url = args.url
    if "postgres" in databases and url is None:
        cluster = Cluster(find_bindir())
        cluster.start(durable=True)
        url = cluster.url
    try:
        print(
            f"{'database':<10} {'processes':>9} {'accepted/s':>11} {'delivered/s':>12} {'load (1 min)':>13}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for database in databases:
                for k in counts:
                    env = {key: value for key, value in os.environ.items() if key != "PYFLUE_DATABASE_URL"}
                    if database == "postgres":
                        assert url is not None
                        env["PYFLUE_DATABASE_URL"] = _new_database(url, f"bench_{k}_{time.monotonic_ns()}")
                    accepted, delivered = _row(Path(tmp) / f"{database}-{k}", k, args, env)
                    load = os.getloadavg()[0]
                    print(f"{database:<10} {k:>9} {accepted:>11,.0f} {delivered:>12,.0f} {load:>13.2f}")
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"\nload average after: {_load()}")
    if args.accept:
        print()
        subprocess.run([sys.executable, str(Path(__file__).with_name("dispatch_accept.py"))], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--processes", default="1,2,4", help="process counts of the curve (default 1,2,4)")
    parser.add_argument("--databases", default="postgres,sqlite", help="postgres, sqlite or both")
    parser.add_argument("--url", help="a PostgreSQL server's URL (default: a throwaway durable cluster)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--accept", action="store_true", help="also run dispatch_accept.py")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fill", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, default=1, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker is not None:
        anyio.run(_work, arguments.worker, arguments.concurrency, backend=arguments.backend)
    elif arguments.fill is not None:
        anyio.run(
            _fill,
            arguments.fill,
            arguments.items,
            arguments.sessions,
            arguments.part,
            arguments.of,
            backend=arguments.backend,
        )
    else:
        began = time.perf_counter()
        main(arguments)
        print(f"\n(total {time.perf_counter() - began:.0f} s)")
