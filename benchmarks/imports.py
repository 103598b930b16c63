"""Where PyFlue's user import spends its time, beside the floor, module by module.

``python -m benchmarks.imports [--runs 7]`` runs ``worker/importcost.py`` in new processes of
PyFlue's venv, alternating what users write (:data:`~benchmarks.frameworks.USER_IMPORT`) with the floor
(``import pydantic, httpx, anyio``), and prints a ranked table: for each ``pyflue`` module, its own
time (the module body: class bodies, pydantic schemas and dataclasses built at import), the pydantic
schemas it builds, and the modules it loads that the floor does not (charged to the nearest ``pyflue``
module that caused them, through a pydantic build if that is what loaded them). The driver runs the
same analysis with the startup scenario and puts the table in the report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .frameworks import FLOOR, FRAMEWORKS, USER_IMPORT
from .venvs import ensure, python_of

__all__ = ["analyse", "measure", "render"]

WORKER = Path(__file__).resolve().parent / "worker" / "importcost.py"
_MARK = "BENCH-IMPORTS "
_PYFLUE = "pyflue"


def _one(statement: str) -> dict[str, Any]:
    pyflue = next(f for f in FRAMEWORKS if f.name == "pyflue")
    done = subprocess.run(
        [str(python_of(pyflue)), str(WORKER), statement], capture_output=True, text=True, timeout=300
    )
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK) :])
            return result
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"import analysis of {statement!r} failed: exit {done.returncode}: {tail}")


def measure(runs: int) -> dict[str, list[dict[str, Any]]]:
    """``runs`` new processes each of the user import and of the floor, alternating."""
    samples: dict[str, list[dict[str, Any]]] = {"user": [], "floor": []}
    for _ in range(runs):
        samples["user"].append(_one(USER_IMPORT))
        samples["floor"].append(_one(FLOOR.import_statement))
    return samples


def _median_by(runs: list[dict[str, Any]], key: str, field: str, value: str) -> dict[str, float]:
    """For each ``runs[i][key][j][field]``, the median of ``value`` over the runs it appears in."""
    seen: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for item in run[key]:
            seen[item[field]].append(item[value])
    return {name: statistics.median(values) for name, values in seen.items()}


def _is_pyflue(name: str) -> bool:
    return name == _PYFLUE or name.startswith(_PYFLUE + ".")


def _entry(own_s: float) -> dict[str, Any]:
    return {"own_ms": own_s * 1e3, "builds": [], "dataclasses": [], "loads": []}


def analyse(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the runs: totals, and per ``pyflue`` module its own time, builds and extra loads."""
    user, floor = samples["user"], samples["floor"]
    own = _median_by(user, "modules", "name", "self_s")
    cumulative = _median_by(user, "modules", "name", "cumulative_s")
    builds = _median_by(user, "builds", "frame", "self_s")
    parent: dict[str, str] = {}
    build_in: dict[str, str] = {}
    for run in user:
        parent.update({m["name"]: m["parent"] for m in run["modules"]})
        build_in.update({b["frame"]: b["in"] for b in run["builds"]})
    floor_modules = {m["name"] for run in floor for m in run["modules"]}

    def owner(name: str) -> str:
        """The nearest ``pyflue`` module that caused ``name`` to load (``__main__`` if none)."""
        while True:
            name = build_in.get(name) or parent.get(name, "__main__")
            if name == "__main__" or _is_pyflue(name):
                return name

    modules: dict[str, dict[str, Any]] = {name: _entry(own[name]) for name in own if _is_pyflue(name)}
    for frame, seconds in builds.items():
        where = build_in[frame]
        if not _is_pyflue(where):
            continue
        if frame.startswith("dataclass:"):
            modules[where]["dataclasses"].append({"what": frame, "ms": seconds * 1e3})
        else:
            modules[where]["builds"].append({"what": frame, "ms": seconds * 1e3})
    for name in own:
        if _is_pyflue(name) or name in floor_modules:
            continue
        up = parent.get(name, "__main__")
        if not (_is_pyflue(up) or ":" in up or up == "__main__" or up in floor_modules):
            continue  # counted in the module that loaded it, which the floor does not load either
        charged = owner(name)
        load: dict[str, Any] = {"module": name, "ms": cumulative[name] * 1e3}
        if ":" in up:
            load["during"] = up
        modules.setdefault(charged, _entry(0.0))["loads"].append(load)
    for entry in modules.values():
        entry["builds"].sort(key=lambda b: -b["ms"])
        entry["loads"].sort(key=lambda b: -b["ms"])
        entry["builds_ms"] = sum(b["ms"] for b in entry["builds"])
        entry["dataclasses_ms"] = sum(b["ms"] for b in entry["dataclasses"])
        entry["loads_ms"] = sum(b["ms"] for b in entry["loads"])
        entry["total_ms"] = entry["own_ms"] + entry["loads_ms"]
    user_modules = {m["name"] for run in user for m in run["modules"]}
    unused = sorted(
        (name for name in floor_modules if name not in user_modules and "." not in name),
        key=lambda n: -_median_by(floor, "modules", "name", "cumulative_s").get(n, 0.0),
    )
    return {
        "runs": len(user),
        "statement": USER_IMPORT,
        "floor_statement": FLOOR.import_statement,
        "user_ms": statistics.median(r["total_s"] for r in user) * 1e3,
        "floor_ms": statistics.median(r["total_s"] for r in floor) * 1e3,
        "modules": dict(sorted(modules.items(), key=lambda kv: -kv[1]["total_ms"])),
        "floor_only": unused,
    }


def _ms(value: float) -> str:
    return f"{value:.1f}"


def render(analysis: dict[str, Any], top: int = 12) -> list[str]:
    """The ranked table, as markdown lines."""
    user, floor = analysis["user_ms"], analysis["floor_ms"]
    lines = [
        f"`{analysis['statement']}` in a new process, instrumented: {_ms(user)} ms; the floor "
        f"`{analysis['floor_statement']}` {_ms(floor)} ms (median of {analysis['runs']}; the "
        "instrumentation adds to both, so read shares, not absolute times). A module both load is "
        "charged to the first `pyflue` module that loads it. Modules of the floor that the user import "
        f"does not load: {', '.join(analysis['floor_only']) or 'none'}.",
        "",
        "| module | own ms | pydantic schemas built at import (ms) | dataclasses built (ms) "
        "| loads what the floor does not (ms, with what it loads) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in list(analysis["modules"].items())[:top]:
        builds = ", ".join(f"`{b['what'].split(':', 1)[1]}` {_ms(b['ms'])}" for b in entry["builds"][:4])
        loads = ", ".join(
            f"`{load['module']}` {_ms(load['ms'])}"
            + (f" (during `{load['during'].split(':', 1)[1]}`)" if "during" in load else "")
            for load in entry["loads"][:5]
        )
        count = len(entry["dataclasses"])
        dataclasses = f"{count}: {_ms(entry['dataclasses_ms'])}" if count else ""
        own = _ms(entry["own_ms"]) if name != "__main__" else ""
        label = f"`{name}`" if name != "__main__" else "(the statement itself)"
        lines.append(f"| {label} | {own} | {builds} | {dataclasses} | {loads} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imports", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="new processes of each statement (default 7)")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    args = parser.parse_args(argv)
    ensure(next(f for f in FRAMEWORKS if f.name == "pyflue"))
    analysis = analyse(measure(args.runs))
    print(json.dumps(analysis, indent=1) if args.json else "\n".join(render(analysis, top=40)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
