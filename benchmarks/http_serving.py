"""Serving over HTTP: this repository's ``pyflue_asgi`` app beside PyFlue 0.2.0's own server.

    python -m benchmarks.http_serving [--quick] [--rounds N] [--seed S] [--client auto|httpx|wrk]
                                      [--concurrency C] [--duration S] [--streams N] [--profile]

Each server runs in its own venv (``benchmarks/.venvs``, prepared as the main driver prepares them)
under ``uvicorn.run`` with the same settings (:data:`UVICORN`: one process, 127.0.0.1, access log
off, the asyncio loop and h11 for both), on a project of its own in a new temporary directory:

* an agent ``x`` on the offline test model: this repository's model string ``test``; for 0.2.0,
  pydantic-ai's ``TestModel`` with no tool calls set in ``pyflue.config.py`` (0.2.0's string ``test``
  is pydantic-ai's ``TestModel`` calling every tool, which fails on 0.2.0's own read-only sandbox);
  both answer ``success (no tool calls)`` after one model call;
* a workflow ``x`` that starts an instance of that agent and prompts it once;
* a workflow ``ticker`` that logs ``--events`` events ``--tick`` s apart (for the SSE fan-out).

This process is the load generator on 127.0.0.1 (:mod:`benchmarks.httpload`: httpx, or ``wrk`` when
it is installed). Every round starts each (server, part) unit in a new server process, in a new
shuffled order (``--seed``; docs/decisions/0015-benchmark-method.md): the ``throughput`` part warms up
(every agent instance once, some workflow runs), then loads ``POST /agents/x/{id}`` and
``POST /workflows/x?wait=result`` for ``--duration`` seconds each; the ``sse`` part opens
``--streams`` concurrent ``GET /runs/{id}/stream`` on one run. The report gives each figure's median
over the rounds and the ratio to 0.2.0 in the same run, with the load average before and after.
A server that cannot do something gets a note, never a number.

``--profile`` also runs this repository's server once per route under cProfile with the same load
and writes the listings, with the request count, to ``results/profiles/http_*.txt``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import pstats
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .frameworks import FRAMEWORKS, REPO, Framework
from .httpload import Route, fanout, throughput, wrk_available
from .runner import scrubbed_environment
from .venvs import ensure, python_of

__all__ = ["ROUTES", "SERVERS", "UVICORN", "main", "markdown", "summarise"]

RESULTS = Path(__file__).resolve().parent / "results"
SERVER_SCRIPT = Path(__file__).resolve().parent / "worker" / "http_server.py"

#: ``uvicorn.run`` keywords of every server (the port is added per process).
UVICORN: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": None,  # uvicorn.run with an app object: this one process
    "loop": "asyncio",
    "http": "h11",
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
    "backlog": 2048,
    "timeout_graceful_shutdown": 5,
}

_TICKER = """
    import inspect
    from pathlib import Path

    import anyio


    async def run(ctx):
        go = Path(ctx.payload["go"])
        while not go.exists():
            await anyio.sleep(0.01)
        for i in range(ctx.payload["events"]):
            logged = ctx.log.info("tick", i=i)
            if inspect.isawaitable(logged):  # PyFlue 0.2.0's ctx.log methods are coroutines
                await logged
            await anyio.sleep(ctx.payload["tick"])
        return {"ticks": ctx.payload["events"]}
    """
_PROMPT_ONCE = """
    from pyflue import create_agent

    assistant = create_agent(lambda ctx: {MODEL})


    async def run(ctx):
        harness = await ctx.init(assistant)
        session = await harness.session()
        result = await session.prompt(ctx.payload.get("message", "hello"))
        return {"text": result.text}
    """
_AGENT = """
    from pyflue import create_agent

    default = create_agent(lambda ctx: {MODEL})
    """
_020_CONFIG = """
    from pydantic_ai.models.test import TestModel

    # 0.2.0 passes a non-string model from its config straight to pydantic-ai.
    config = {"agent": {"model": TestModel(call_tools=[], custom_output_text="success (no tool calls)")}}
    """


@dataclass(frozen=True)
class Server:
    name: str  # the kind passed to worker/http_server.py, and the result key
    label: str
    framework: Framework
    files: dict[str, str]


def _project(model: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "agents/x.py": _AGENT.replace("{MODEL}", model),
        "workflows/x.py": _PROMPT_ONCE.replace("{MODEL}", model),
        "workflows/ticker.py": _TICKER,
        **(extra or {}),
    }


_BY_NAME = {f.name: f for f in FRAMEWORKS}
SERVERS: tuple[Server, ...] = (
    Server("pyflue", "PyFlue (this repo)", _BY_NAME["pyflue"], _project('{"model": "test"}')),
    Server(
        "pyflue-0.2.0",
        "PyFlue 0.2.0",
        _BY_NAME["pyflue-0.2.0"],
        _project("{}", {"pyflue.config.py": _020_CONFIG}),
    ),
)
BASELINE = "pyflue-0.2.0"

_PARAMS = {
    "full": {"rounds": 3, "duration": 8.0, "streams": 1000, "events": 40, "tick": 0.05},
    "quick": {"rounds": 1, "duration": 2.0, "streams": 200, "events": 20, "tick": 0.05},
}


def _log(message: str) -> None:
    print(f"[http] {message}", file=sys.stderr, flush=True)


#: The routes under load: a prompt to one of the worker's own agent instances, and a workflow run.
ROUTES = (
    Route("prompt", "/agents/x/{instance}", {"message": "hello"}),
    Route("workflow", "/workflows/x?wait=result", {"message": "hello"}),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving(server: Server, profile_out: Path | None = None) -> Iterator[tuple[str, int, Path]]:
    """A new server process on a new project; yields its URL, pid and project directory."""
    with tempfile.TemporaryDirectory(prefix="pyflue-http-") as tmp:
        root = Path(tmp)
        for relative, source in server.files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(textwrap.dedent(source).lstrip())
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [str(python_of(server.framework)), str(SERVER_SCRIPT), server.name, str(root), str(port)]
        argv.append(json.dumps(UVICORN))
        if profile_out is not None:
            argv.append(str(profile_out))
        log = (root / "server.log").open("w")
        process = subprocess.Popen(argv, env=scrubbed_environment(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    tail = (root / "server.log").read_text()[-500:]
                    raise RuntimeError(f"{server.name} did not start: {tail}")
                time.sleep(0.1)
            yield url, process.pid, root
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _warm_up(url: str, concurrency: int) -> None:
    """Every agent instance of the load once (0.2.0 builds an instance and its session files on
    first use), and a few workflow runs: the measured requests find what they use in place."""
    prompt, workflow = ROUTES
    with httpx.Client(base_url=url, timeout=120) as client:
        for worker in range(concurrency):
            for k in range(prompt.instances_per_worker):
                reply = client.post(prompt.target(worker, k), json=prompt.body)
                reply.raise_for_status()
        for _ in range(10):
            client.post(workflow.path, json=workflow.body).raise_for_status()


def _throughput_unit(server: Server, args: argparse.Namespace, client: str) -> dict[str, Any]:
    with _serving(server) as (url, pid, _root):
        try:
            _warm_up(url, args.concurrency)
        except httpx.HTTPError as exc:
            failure = {"status": "error", "error": f"warm-up: {exc!s}"[:300]}
            return {route.name: failure for route in ROUTES}
        return {
            route.name: throughput(
                url,
                route,
                pid=pid,
                concurrency=args.concurrency,
                duration=args.duration,
                max_requests=args.max_requests,
                client=client,
            )
            for route in ROUTES
        }


def _sse_unit(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    with _serving(server) as (url, pid, root):
        return {
            "sse": fanout(url, pid, root / "go", streams=args.streams, events=args.events, tick=args.tick)
        }


Raw = dict[str, dict[str, list[dict[str, Any]]]]  # part -> server -> one result per round


def _rounds(servers: list[Server], args: argparse.Namespace, client: str) -> Raw:
    rng = random.Random(args.seed)
    units = [(s, part) for s in servers for part in ("throughput", "sse") if part in args.parts]
    raw: Raw = {}
    for round_ in range(args.rounds):
        for server, part in rng.sample(units, len(units)):
            began = time.perf_counter()
            try:
                results = (
                    _throughput_unit(server, args, client)
                    if part == "throughput"
                    else _sse_unit(server, args)
                )
            except Exception as exc:  # the server did not start, or broke: a note for each figure
                failure = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                names = ("prompt", "workflow") if part == "throughput" else ("sse",)
                results = dict.fromkeys(names, failure)
            for name, result in results.items():
                raw.setdefault(name, {}).setdefault(server.name, []).append(result)
            states = ", ".join(f"{n}: {_brief(r)}" for n, r in results.items())
            elapsed = time.perf_counter() - began
            _log(f"round {round_ + 1}/{args.rounds} {server.name} {part}: {states} ({elapsed:.0f} s)")
    return raw


def _brief(result: dict[str, Any]) -> str:
    if result.get("status") != "ok":
        return f"error ({result.get('error', '')[:120]})"
    if "requests_per_s" in result:
        return f"{result['requests_per_s']:.1f} req/s"
    complete = f"{result['streams_complete']}/{result['streams']} complete"
    return f"p50 {result['delta_latency_ms_p50']:.1f} ms, {complete}"


# (figure, unit, better) per part; each is summarised as its median over the rounds.
_FIGURES = {
    "prompt": (
        ("requests_per_s", "req/s", "higher"),
        ("latency_ms_p50", "ms", "lower"),
        ("latency_ms_p99", "ms", "lower"),
        ("server_cpu_ms_per_request", "ms CPU", "lower"),
        ("client_cpu_share", "cores", "\u2014"),  # context for the row above it, not a contest
    ),
    "sse": (
        ("delta_latency_ms_p50", "ms", "lower"),
        ("delta_latency_ms_p99", "ms", "lower"),
        ("server_rss_mib_before", "MiB", "lower"),
        ("server_rss_mib_peak", "MiB", "lower"),
        ("streams_complete", "streams", "higher"),
    ),
}
_FIGURES["workflow"] = _FIGURES["prompt"]


def summarise(raw: Raw) -> dict[str, dict[str, dict[str, Any]]]:
    """``figures[part][server]``: each figure's median, min and max over the rounds, or the error
    that stopped it (a failed round fails the cell: a number from the other rounds would hide it)."""
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    for part, by_server in raw.items():
        for name, rounds in by_server.items():
            failed = next((r for r in rounds if r.get("status") != "ok"), None)
            if failed is not None:
                figures.setdefault(part, {})[name] = {"status": "error", "error": failed.get("error")}
                continue
            cell: dict[str, Any] = {"status": "ok", "rounds": len(rounds)}
            for key, _unit, _better in _FIGURES[part]:
                values = [r[key] for r in rounds if r.get(key) is not None]
                if values:
                    cell[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
            figures.setdefault(part, {})[name] = cell
    return figures


_TITLES = {
    "prompt": "`POST /agents/x/{id}`",
    "workflow": "`POST /workflows/x?wait=result`",
    "sse": "SSE fan-out on one run",
}
_NAMES = {
    "requests_per_s": "requests per second",
    "latency_ms_p50": "answer latency p50",
    "latency_ms_p99": "answer latency p99",
    "server_cpu_ms_per_request": "server CPU per request",
    "client_cpu_share": "load generator's CPU (1 = a whole core: it limited the figure)",
    "delta_latency_ms_p50": "delta latency p50",
    "delta_latency_ms_p99": "delta latency p99",
    "server_rss_mib_before": "server RSS before the streams",
    "server_rss_mib_peak": "server RSS, peak with the streams open",
    "streams_complete": "streams that got every event",
}


def _num(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.3g}"


def _cell(cell: dict[str, Any] | None, key: str) -> str:
    if cell is None:
        return ""
    if cell.get("status") != "ok":
        return "error (see notes)"
    figure = cell.get(key)
    if figure is None:
        return "n/a"
    text = _num(figure["median"])
    if cell["rounds"] > 1 and figure["min"] != figure["max"]:
        text += f" ({_num(figure['min'])}\u2013{_num(figure['max'])})"
    return text


def markdown(
    meta: dict[str, Any], figures: dict[str, dict[str, dict[str, Any]]], servers: list[Server]
) -> str:
    load = meta["load_average"]
    out = [
        f"# Serving over HTTP \u2014 {meta['date']} ({meta['mode']} mode)",
        "",
        f"Python {meta['python']}, {meta['cpus']} CPUs; commit `{meta['commit']}`; "
        f"{meta['rounds']} round(s), interleaved (seed {meta['seed']}); "
        f"1-minute load average {load[0]} before, {load[1]} after; "
        f"{meta['elapsed_s']:.0f} s.",
        f"Load: {meta['client']}, {meta['concurrency']} connections (closed loop), {meta['duration_s']:g} s "
        f"per route per round; SSE: {meta['streams']} streams \u00d7 {meta['events']} events, "
        f"{meta['tick_s']:g} s apart.",
        f"uvicorn settings (both): `{json.dumps(meta['uvicorn'])}`.",
        "Versions: "
        + "; ".join(
            f"{s}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for s, vs in meta["versions"].items()
        )
        + ".",
        "",
        "Cells: median over the rounds (min\u2013max). Ratio: PyFlue's median \u00f7 0.2.0's where higher "
        "is better, 0.2.0's \u00f7 PyFlue's where lower is better: above 1, PyFlue is ahead.",
        "",
        "| route | figure | unit | better | " + " | ".join(s.label for s in servers) + " | ratio |",
        "|---|---|---|---|" + "---|" * len(servers) + "---|",
    ]
    notes: list[str] = []
    for part in ("prompt", "workflow", "sse"):
        row = figures.get(part)
        if not row:
            continue
        for key, unit, better in _FIGURES[part]:
            cells = [_cell(row.get(s.name), key) for s in servers]
            out.append(
                f"| {_TITLES[part]} | {_NAMES[key]} | {unit} | {better} | "
                + " | ".join(cells)
                + f" | {_ratio(row, key, better)} |"
            )
        for name, cell in row.items():
            if cell.get("status") != "ok":
                notes.append(f"- {name}, {_TITLES[part]}: {cell.get('error')}")
    if notes:
        out += ["", "Notes:", "", *sorted(set(notes))]
    return "\n".join(out) + "\n"


def _versions_text(versions: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for s, vs in versions.items())


def _ratio(row: dict[str, dict[str, Any]], key: str, better: str) -> str:
    mine, theirs = row.get("pyflue", {}).get(key), row.get(BASELINE, {}).get(key)
    if (
        better not in ("higher", "lower")
        or not mine
        or not theirs
        or not mine["median"]
        or not theirs["median"]
    ):
        return ""
    value = mine["median"] / theirs["median"] if better == "higher" else theirs["median"] / mine["median"]
    return f"**\u00d7{value:.3g}**"


def _versions(server: Server) -> dict[str, str]:
    code = (
        "import importlib.metadata as m\n"
        "out = {}\n"
        "for d in ('pyflue', 'uvicorn', 'h11', 'starlette', 'fastapi'):\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(__import__('json').dumps(out))"
    )
    done = subprocess.run([str(python_of(server.framework)), "-c", code], capture_output=True, text=True)
    return dict(json.loads(done.stdout or "{}"))


def _profile(args: argparse.Namespace, client: str, directory: Path) -> None:
    """This repository's server under cProfile, one process per route, with the benchmark's load."""
    server = next(s for s in SERVERS if s.name == "pyflue")
    directory.mkdir(parents=True, exist_ok=True)
    for route in ROUTES:
        stats_file = directory / f"http_{route.name}.prof"
        with _serving(server, profile_out=stats_file) as (url, pid, _root):
            _warm_up(url, args.concurrency)
            result = throughput(
                url,
                route,
                pid=pid,
                concurrency=args.concurrency,
                duration=args.duration,
                max_requests=args.max_requests,
                client=client,
            )
        if result.get("status") != "ok":
            _log(f"profile of {route.name} failed: {result.get('error')}")
            continue
        warm = args.concurrency * route.instances_per_worker + 10
        requests = result["requests"] + warm
        text = io.StringIO()
        stats = pstats.Stats(str(stats_file), stream=text)
        for order in ("tottime", "cumulative"):
            stats.sort_stats(order).print_stats(45)
        header = (
            f"cProfile of this repository's server (event-loop thread), {route.path} under {client}, "
            f"{args.concurrency} connections: {requests} requests in the profile ({warm} of them the "
            f"warm-up). Divide a row's time by {requests} for its cost per request. Measured under "
            f"cProfile: {result['requests_per_s']:.0f} req/s.\n\n"
        )
        (directory / f"http_{route.name}.txt").write_text(
            header + text.getvalue().replace(str(REPO) + "/", "")
        )
        if not args.keep_profile_stats:
            stats_file.unlink()
        _log(f"profiled {route.name} -> {directory / f'http_{route.name}.txt'}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per route, 200 SSE streams")
    parser.add_argument("--rounds", type=int, help="rounds (full 3, quick 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of each round's shuffled order")
    parser.add_argument(
        "--duration", type=float, help="seconds of load per route per round (full 8, quick 2)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="connections / requests in flight")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per route per round (httpx)")
    parser.add_argument("--streams", type=int, help="concurrent SSE streams (full 1000, quick 200)")
    parser.add_argument("--events", type=int, help="log events on the streamed run (full 40, quick 20)")
    parser.add_argument("--tick", type=float, help="seconds between those events (0.05)")
    parser.add_argument(
        "--client",
        choices=("auto", "httpx", "wrk"),
        default="auto",
        help="load generator for requests/s: wrk when installed (auto), else httpx",
    )
    parser.add_argument(
        "--parts", nargs="+", choices=("throughput", "sse"), default=["throughput", "sse"], help="what to run"
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=[s.name for s in SERVERS],
        default=[s.name for s in SERVERS],
        help="servers to run (default both)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile our server, one route at a time"
    )
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: rewrite http_serving.md from its .json"
    )
    parser.add_argument(
        "--keep-profile-stats", action="store_true", help="keep the raw cProfile stats (.prof) too"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where http_serving.json/.md go")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    for key, value in _PARAMS[mode].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.mode = mode
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.render:
        document = json.loads((args.output / "http_serving.json").read_text())
        shown = [s for s in SERVERS if s.name in document["meta"]["versions"]]
        text = markdown(document["meta"], document["figures"], shown)
        (args.output / "http_serving.md").write_text(text)
        print(text)
        return 0
    client = ("wrk" if wrk_available() else "httpx") if args.client == "auto" else args.client
    if client == "wrk" and not wrk_available():
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client httpx")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = [s for s in SERVERS if s.name in args.servers]
    for server in servers:
        ensure(server.framework)
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    raw = _rounds(servers, args, client)
    figures = summarise(raw)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": args.mode,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip() or "?",
        "rounds": args.rounds,
        "seed": args.seed,
        "client": client,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "streams": args.streams,
        "events": args.events,
        "tick_s": args.tick,
        "uvicorn": UVICORN,
        "versions": {s.name: _versions(s) for s in servers},
        "elapsed_s": round(time.perf_counter() - began, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    args.output.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "figures": figures, "raw": raw}
    (args.output / "http_serving.json").write_text(json.dumps(document, indent=1) + "\n")
    text = markdown(meta, figures, servers)
    (args.output / "http_serving.md").write_text(text)
    print(text)
    if args.profile:
        _profile(args, client, args.output / "profiles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
