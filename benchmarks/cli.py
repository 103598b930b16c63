"""The driver: prepare the venvs, run each scenario for each framework, write the results."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import imports, report
from .frameworks import FRAMEWORKS, IMPORT_ONLY, REPO, Framework, select
from .metrics import evaluate
from .plan import COMPARED, ROUNDS, SCENARIOS, params_for, per_round
from .runner import run_startup, run_worker
from .targets import check
from .venvs import ensure, version_of

RESULTS = Path(__file__).resolve().parent / "results"
DOCS_PAGE = REPO / "docs" / "performance.md"
# Scenarios that share one process per framework in --quick mode, so each framework's import is paid
# once. Memory goes first, while the heap holds nothing but the warm-up (its conversations are freed
# when it returns); full mode gives every scenario a process of its own.
_QUICK_GROUP = ("memory", "text", "tool", "stream", "concurrent")
# The PyFlue scenarios profiled by --profile (memory is left out: it measures bytes, not time).
_PROFILED = ("text", "tool", "stream", "concurrent", "workflow", "session_append", "sse")

Raw = dict[str, dict[str, dict[str, Any]]]


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs (about one minute once venvs exist)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        choices=[s.name for s in SCENARIOS],
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--frameworks",
        nargs="+",
        metavar="NAME",
        help=f"frameworks to compare (default all: {', '.join(f.name for f in FRAMEWORKS)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile PyFlue's scenarios with cProfile into results/profiles/",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help=f"rounds of each scenario, interleaved across frameworks (default {ROUNDS['full']}, "
        f"--quick {ROUNDS['quick']})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the shuffled order of each round (default 0)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where latest.json/.md go")
    parser.add_argument(
        "--update-docs", action="store_true", help="also put the results table into docs/performance.md"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite latest.md (and, with --update-docs, the docs page) from latest.json",
    )
    return parser.parse_args(argv)


def _startup(frameworks: list[Framework], quick: bool, rng: random.Random) -> dict[str, dict[str, Any]]:
    """New processes, one per entry per round, each round in a new shuffled order."""
    params = params_for("startup", quick)
    entries = [*IMPORT_ONLY, *(f for f in frameworks if "startup" not in f.skip)]
    runs: dict[str, list[dict[str, Any]]] = {f.name: [] for f in entries}
    failures: dict[str, dict[str, Any]] = {}
    for round_ in range(params["warmup"] + params["runs"]):
        for framework in rng.sample(entries, len(entries)):
            if framework.name in failures:
                continue
            result = run_startup(framework)
            if result.get("status") != "ok":
                failures[framework.name] = result
            elif round_ >= params["warmup"]:
                runs[framework.name].append(result)
    return {name: failures.get(name) or {"status": "ok", "rounds": results} for name, results in runs.items()}


Unit = tuple[Framework, list[str]]


def _units(frameworks: list[Framework], scenarios: list[str], quick: bool) -> list[Unit]:
    """One process's work each: a framework and the scenarios it runs in it. Full mode gives every
    scenario a process of its own; --quick runs a framework's compared scenarios in one process."""
    units: list[Unit] = []
    for framework in frameworks:
        wanted = [
            s for s in scenarios if s not in framework.skip and (s in COMPARED or framework.name == "pyflue")
        ]
        grouped = [s for s in _QUICK_GROUP if quick and s in wanted]
        units += [(framework, grouped)] if grouped else []
        units += [(framework, [s]) for s in wanted if s not in grouped]
    return units


def _scenarios(
    frameworks: list[Framework], scenarios: list[str], quick: bool, rounds: int, rng: random.Random
) -> Raw:
    """Every (framework, scenarios) unit once per round; each round in a new shuffled order, so a
    drift in machine load is spread over every framework instead of biasing the later ones."""
    units = _units(frameworks, scenarios, quick)
    params = {name: per_round(params_for(name, quick), rounds) for name in scenarios}
    raw: Raw = {}
    for round_ in range(rounds):
        for framework, batch in rng.sample(units, len(units)):
            start = time.perf_counter()
            results = run_worker(framework, batch, {s: params[s] for s in batch})
            for name, result in results.items():
                cell = raw.setdefault(name, {}).setdefault(framework.name, {"status": "ok", "rounds": []})
                if cell.get("status") != "ok":
                    continue  # it failed in an earlier round: the failure stands
                if result.get("status") == "ok":
                    cell["rounds"].append(result)
                else:
                    raw[name][framework.name] = result
            states = ", ".join(f"{n}: {r.get('status')}" for n, r in results.items())
            elapsed = time.perf_counter() - start
            _log(f"round {round_ + 1}/{rounds} {framework.name}: {states} ({elapsed:.1f} s)")
    return raw


def _profile(pyflue: Framework, directory: Path) -> None:
    """cProfile of PyFlue's scenarios (full-sized runs, so one-off imports fade), one text file each."""
    directory.mkdir(parents=True, exist_ok=True)
    for scenario in _PROFILED:
        run_worker(pyflue, [scenario], {scenario: params_for(scenario, False)}, profile_dir=directory)
        _log(f"profiled {scenario} -> {directory / (scenario + '.txt')}")


def _meta(frameworks: list[Framework], quick: bool) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    versions: dict[str, str] = {}
    for framework in frameworks:
        versions.setdefault(
            framework.distribution if framework.name != "pyflue" else "pyflue (repo)", version_of(framework)
        )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if quick else "full",
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip() or "?",
        "versions": versions,
        "frameworks": [f.name for f in frameworks],
    }


def _render(args: argparse.Namespace) -> int:
    meta, figures, _, breakdown = report.read(args.output)
    frameworks = [f for f in FRAMEWORKS if f.name in meta["frameworks"]]
    text = report.write(args.output, meta, figures, check(figures), frameworks, breakdown)
    print(text)
    if args.update_docs and not report.update_docs(DOCS_PAGE, text):
        _log(f"{DOCS_PAGE} has no bench:results markers; left unchanged")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.render:
        return _render(args)
    frameworks = select(args.frameworks)
    scenarios = args.only or [s.name for s in SCENARIOS]
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    pyflue = next(f for f in FRAMEWORKS if f.name == "pyflue")
    for framework in {f.venv: f for f in [pyflue, *frameworks]}.values():
        ensure(framework)
    rounds = args.rounds or ROUNDS["quick" if args.quick else "full"]
    rng = random.Random(args.seed)
    raw: Raw = {}
    breakdown: dict[str, Any] | None = None
    if "startup" in scenarios:
        raw["startup"] = _startup(frameworks, args.quick, rng)
        if pyflue in frameworks:
            analysis_runs = params_for("startup", args.quick)["analysis_runs"]
            breakdown = imports.analyse(imports.measure(analysis_runs))
        _log(f"startup done ({time.perf_counter() - began:.1f} s)")
    raw.update(_scenarios(frameworks, [s for s in scenarios if s != "startup"], args.quick, rounds, rng))
    if args.profile:
        _profile(pyflue, args.output / "profiles")
    figures = evaluate(raw)
    meta = _meta(frameworks, args.quick)
    meta["rounds"], meta["seed"] = rounds, args.seed
    meta["elapsed_s"] = round(time.perf_counter() - began, 1)
    # Other work on the machine inflates times; the 1-minute load average before and after says how much.
    meta["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    text = report.write(args.output, meta, figures, check(figures), frameworks, breakdown)
    print(text)
    _log(f"wrote {args.output / 'latest.md'} and latest.json in {meta['elapsed_s']} s")
    if args.update_docs and not report.update_docs(DOCS_PAGE, text):
        _log(f"{DOCS_PAGE} has no bench:results markers; left unchanged")
    return 0
