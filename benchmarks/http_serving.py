"""HTTP serving throughput and SSE fan-out of ``pyflue_asgi`` under uvicorn (one worker).

    python benchmarks/http_serving.py [--requests 2000] [--concurrency 32] [--streams 1000] [--json]

The server runs in a subprocess (``uvicorn``, one worker, ``log_level=warning``) on 127.0.0.1 over a
temporary project using the offline ``test`` model; this process is the load generator (httpx, one
connection pool). Everything is bounded in count and time.

* **prompt req/s**: ``POST /agents/echo/{id}`` over 100 instance ids (one session each), ``--requests``
  requests, ``--concurrency`` in flight. Each is a full operation: the session's history loaded and
  appended in SQLite, the turn loop on the test model, the JSON answer.
* **workflow req/s**: ``POST /workflows/hello?wait=result``: a run recorded, run and finished in SQLite,
  the final record returned.
* **SSE fan-out**: ``--streams`` concurrent ``GET /runs/{id}/stream`` on one run that logs one event every
  ``--tick`` seconds (``--events`` of them). Delta latency = arrival at the client minus the event's ``ts``
  (same host clock), over every event of every stream; the server's RSS before the streams and at its
  peak while they are open.

``measure()`` returns the figures as a dict (``--json`` prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

FILES = {
    "agents/echo.py": """
        from pyflue import create_agent

        default = create_agent(lambda ctx: {"model": "test"})
        """,
    "workflows/hello.py": """
        async def run(ctx):
            return {"greeting": "hello " + ctx.payload.get("name", "you")}
        """,
    "workflows/ticker.py": """
        import anyio
        from pathlib import Path

        async def run(ctx):
            go = Path(ctx.payload["go"])
            while not go.exists():
                await anyio.sleep(0.01)
            for i in range(ctx.payload["events"]):
                ctx.log.info("tick", i=i)
                await anyio.sleep(ctx.payload["tick"])
            return {"ticks": ctx.payload["events"]}
        """,
}

SERVER = """
import resource, sys
import uvicorn
from pyflue_asgi import create_app
_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            timeout_graceful_shutdown=5)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _throughput(client: httpx.AsyncClient, requests: int, concurrency: int, make: Any) -> float:
    next_index = 0
    failures = 0

    async def worker() -> None:
        nonlocal next_index, failures
        while next_index < requests:
            i = next_index
            next_index += 1
            method, url, body = make(i)
            reply = await client.request(method, url, json=body)
            if reply.status_code >= 300:
                failures += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} of {requests} requests failed")
    return requests / elapsed


async def _fanout(url: str, pid: int, root: Path, streams: int, events: int, tick: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        go = root / "go"
        run = await client.post("/workflows/ticker", json={"go": str(go), "events": events, "tick": tick})
        run_id = run.json()["run_id"]
        rss_before = _rss_mib(pid)
        latencies: list[float] = []
        connected = 0
        everyone = anyio.Event()
        peak = rss_before
        complete = 0

        async def follow() -> None:
            nonlocal connected, complete
            seen = 0
            async with client.stream("GET", f"/runs/{run_id}/stream") as reply:
                async for line in reply.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    now = time.time()
                    event = json.loads(line[6:])
                    if event["type"] == "run_start":
                        connected += 1
                        if connected == streams:
                            everyone.set()
                    elif event["type"] == "log":
                        latencies.append(now - datetime.fromisoformat(event["ts"]).timestamp())
                        seen += 1
            complete += seen == events

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, _rss_mib(pid))
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            async with anyio.create_task_group() as followers:
                for _ in range(streams):
                    followers.start_soon(follow)
                with anyio.fail_after(120):
                    await everyone.wait()
                go.write_text("")
            tg.cancel_scope.cancel()
    return {
        "streams": streams,
        "streams_complete": complete,
        "events_per_stream": events,
        "delta_latency_ms_p50": round(_percentile(latencies, 0.50) * 1000, 1),
        "delta_latency_ms_p99": round(_percentile(latencies, 0.99) * 1000, 1),
        "delta_latency_ms_mean": round(statistics.fmean(latencies) * 1000, 1),
        "server_rss_mib_before": round(rss_before, 1),
        "server_rss_mib_peak": round(peak, 1),
    }


async def _measure(url: str, pid: int, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await _throughput(client, 50, 8, lambda i: ("POST", f"/agents/echo/warm-{i}", {"message": "hi"}))
        prompt = await _throughput(
            client,
            args.requests,
            args.concurrency,
            lambda i: ("POST", f"/agents/echo/user-{i % 100}", {"message": f"hello {i}"}),
        )
        workflow = await _throughput(
            client,
            args.requests,
            args.concurrency,
            lambda i: ("POST", "/workflows/hello?wait=result", {"name": str(i)}),
        )
    fanout = await _fanout(url, pid, root, args.streams, args.events, args.tick)
    return {
        "prompt_requests_per_s": round(prompt, 1),
        "workflow_requests_per_s": round(workflow, 1),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "sse": fanout,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for relative, source in FILES.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(textwrap.dedent(source))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.05)
            figures = anyio.run(_measure, url, server.pid, root, args)
        finally:
            server.terminate()
            server.wait(30)
    figures["cpus"] = os.cpu_count()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--tick", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    sse = figures["sse"]
    print(f"POST /agents/echo/{{id}}               {figures['prompt_requests_per_s']:>8.1f} req/s")
    print(f"POST /workflows/hello?wait=result     {figures['workflow_requests_per_s']:>8.1f} req/s")
    print(
        f"{sse['streams']} SSE streams on one run: {sse['streams_complete']} complete; delta latency "
        f"p50 {sse['delta_latency_ms_p50']} ms, p99 {sse['delta_latency_ms_p99']} ms; server RSS "
        f"{sse['server_rss_mib_before']} -> {sse['server_rss_mib_peak']} MiB"
    )


if __name__ == "__main__":
    main()
