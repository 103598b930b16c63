"""The load generator of ``benchmarks/http_serving.py``: closed-loop request throughput (httpx, or
``wrk`` when it is installed) and SSE fan-out, against a server on 127.0.0.1, bounded in time and count.

Closed loop: ``concurrency`` workers each send one request, wait for its answer, send the next. Each
worker owns its own agent instances (``{prefix}-{worker}-{k}``), so no two requests in flight ever
prompt the same session: what is measured is serving, not a session's turn queue (PyFlue 0.2.0 answers
a second prompt to a busy session with HTTP 500).

Beside each figure go the CPU seconds the server process (all its threads) and the load generator
spent: the machine has 2 cores, so a load generator that uses a core of its own limits what any
server can show, and the server's CPU time per request is a figure of its own.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

__all__ = ["Route", "cpu_seconds", "fanout", "rss_mib", "throughput", "wrk_available"]

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Route:
    """A POST route under load: ``path`` may hold ``{instance}`` (the worker's own instance id)."""

    name: str
    path: str
    body: dict[str, Any]
    instances_per_worker: int = 4

    def target(self, worker: int, n: int) -> str:
        return self.path.format(instance=f"u{worker}-{n % self.instances_per_worker}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def throughput(
    url: str,
    route: Route,
    *,
    pid: int,
    concurrency: int,
    duration: float,
    max_requests: int,
    client: str,
) -> dict[str, Any]:
    """Requests per second of ``route`` over ``duration`` seconds (or ``max_requests``, httpx only),
    with the answer latency p50/p99 and the CPU seconds of both sides. A request answered with a
    status >= 300 is a failure; any failure makes the result an error, never a number."""
    server_cpu = cpu_seconds(pid)
    if client == "wrk":
        result = _wrk(url, route, concurrency, duration)
    else:
        result = anyio.run(_httpx, url, route, concurrency, duration, max_requests)
    result["server_cpu_s"] = cpu_seconds(pid) - server_cpu
    result["client"] = client
    # Near 1: the load generator had a core to itself and may have limited the figure.
    result["client_cpu_share"] = result["client_cpu_s"] / result["elapsed_s"]
    first_failure = result.pop("first_failure")
    if result["failures"]:
        return {
            "status": "error",
            "error": f"{result['failures']} of {result['requests']} requests failed; first: {first_failure}",
        }
    result["status"] = "ok"
    result["requests_per_s"] = result["requests"] / result["elapsed_s"]
    result["server_cpu_ms_per_request"] = 1000 * result["server_cpu_s"] / result["requests"]
    return result


async def _httpx(
    url: str, route: Route, concurrency: int, duration: float, max_requests: int
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures = 0
    first_failure = ""
    sent = 0
    own_cpu = time.process_time()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as session:
        deadline = time.perf_counter() + duration

        async def worker(index: int) -> None:
            nonlocal failures, first_failure, sent
            n = 0
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                began = time.perf_counter()
                reply = await session.post(route.target(index, n), json=route.body)
                latencies.append(time.perf_counter() - began)
                n += 1
                if reply.status_code >= 300:
                    failures += 1
                    first_failure = first_failure or f"HTTP {reply.status_code} {reply.text[:300]}"

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(concurrency):
                tg.start_soon(worker, index)
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "failures": failures,
        "first_failure": first_failure,
        "elapsed_s": elapsed,
        "latency_ms_p50": 1000 * _percentile(latencies, 0.5),
        "latency_ms_p99": 1000 * _percentile(latencies, 0.99),
        "client_cpu_s": time.process_time() - own_cpu,
    }


# One wrk thread per connection, so each thread (worker) owns its instances as the httpx workers do.
_WRK_SCRIPT = """
local next_id = 0
function setup(thread)
  thread:set("worker", next_id)
  next_id = next_id + 1
end
function init(args)
  n = 0
  failures = 0
  first = ""
end
function request()
  local path = string.gsub(PATH, "{instance}", "u" .. worker .. "-" .. (n % PER_WORKER))
  n = n + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, BODY)
end
function response(status, headers, body)
  if status >= 300 and failures < 1 then
    failures = failures + 1
    io.write("FAILED HTTP " .. status .. " " .. string.gsub(body:sub(1, 300), "\\n", " ") .. "\\n")
  end
end
"""
_WRK_FIELDS = {
    "requests": re.compile(r"(\d+) requests in ([\d.]+)(ms|s|m)\b"),
    "non2xx": re.compile(r"Non-2xx or 3xx responses: (\d+)"),
    "errors": re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"),
    "p50": re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", re.M),
    "p99": re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M),
}
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, route: Route, concurrency: int, duration: float) -> dict[str, Any]:
    lua = _WRK_SCRIPT.replace("PATH", json.dumps(route.path)).replace(
        "BODY", json.dumps(json.dumps(route.body))
    )
    lua = lua.replace("PER_WORKER", str(route.instances_per_worker))
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [
            "wrk",
            f"-t{concurrency}",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "60s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = done.stdout
    found = {key: pattern.search(out) for key, pattern in _WRK_FIELDS.items()}
    counted = found["requests"]
    if done.returncode != 0 or counted is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    elapsed = float(counted.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[counted.group(3)]
    errors = found["errors"]
    socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    non2xx = int(found["non2xx"].group(1)) if found["non2xx"] else 0
    p50, p99 = found["p50"], found["p99"]
    return {
        "requests": int(counted.group(1)),
        "failures": non2xx + socket_errors,
        "first_failure": f"wrk counted {non2xx} answers >= 300 and {socket_errors} socket errors; "
        + (_first_line(out, "FAILED ") or "no answer body recorded"),
        "elapsed_s": elapsed,
        "latency_ms_p50": float(p50.group(1)) * _UNIT_MS[p50.group(2)] if p50 else None,
        "latency_ms_p99": float(p99.group(1)) * _UNIT_MS[p99.group(2)] if p99 else None,
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def _first_line(text: str, prefix: str) -> str:
    return next((line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), "")


def _event_time(event: dict[str, Any]) -> float:
    """The event's creation time in epoch seconds: ``ts`` (ISO-8601, this repository) or
    ``timestamp`` (epoch seconds, PyFlue 0.2.0)."""
    if "ts" in event:
        return datetime.fromisoformat(event["ts"]).timestamp()
    return float(event["timestamp"])


async def _fanout(url: str, pid: int, go: Path, streams: int, events: int, tick: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as session:
        started = await session.post(
            "/workflows/ticker", json={"go": str(go), "events": events, "tick": tick}
        )
        if started.status_code != 202:
            raise RuntimeError(f"starting the run: HTTP {started.status_code} {started.text[:300]}")
        run_id = started.json()["run_id"]
        rss_before = rss_mib(pid)
        latencies: list[float] = []
        connected = 0
        everyone = anyio.Event()
        peak = rss_before
        complete = 0

        async def follow() -> None:
            nonlocal connected, complete
            seen = 0
            async with session.stream("GET", f"/runs/{run_id}/stream") as reply:
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
                        latencies.append(now - _event_time(event))
                        seen += 1
            complete += seen == events

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mib(pid))
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            with anyio.fail_after(events * tick + 120):
                async with anyio.create_task_group() as followers:
                    for _ in range(streams):
                        followers.start_soon(follow)
                    with anyio.fail_after(60):
                        await everyone.wait()
                    await anyio.Path(go).write_text("")
            tg.cancel_scope.cancel()
    if not latencies:
        raise RuntimeError("no stream received a log event")
    return {
        "status": "ok",
        "streams": streams,
        "streams_complete": complete,
        "events_per_stream": events,
        "delta_latency_ms_p50": 1000 * _percentile(latencies, 0.50),
        "delta_latency_ms_p99": 1000 * _percentile(latencies, 0.99),
        "server_rss_mib_before": rss_before,
        "server_rss_mib_peak": peak,
    }


def fanout(url: str, pid: int, go: Path, *, streams: int, events: int, tick: float) -> dict[str, Any]:
    """``streams`` concurrent ``GET /runs/{id}/stream`` on one run (the ``ticker`` workflow, which
    waits for the file ``go`` and then logs ``events`` events ``tick`` seconds apart). Delta latency
    is the client's arrival time minus the event's own time (same host clock), over every event of
    every stream; RSS is the server's before the streams open and at its peak while they are open."""
    try:
        return anyio.run(_fanout, url, pid, go, streams, events, tick)
    except Exception as exc:  # a server that cannot do it gets a note, not a number
        return {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
