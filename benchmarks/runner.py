"""Runs scenarios in a framework's own interpreter and reads back the worker's JSON.

Each worker runs in a scratch directory (PyFlue 0.2.0 writes ``.pyflue/`` into its working
directory) with provider keys removed from its environment, so nothing can reach a network.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .frameworks import Framework
from .venvs import python_of

__all__ = ["WORKER", "run_startup", "run_worker", "scrubbed_environment"]

WORKER = Path(__file__).resolve().parent / "worker" / "main.py"
_MARK = "BENCH-RESULT "
_SCRUB = (
    "OPENAI_API_KEY",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGSMITH_API_KEY",
    "ANTHROPIC_API_KEY",
    "PYFLUE_MODEL",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONDONTWRITEBYTECODE",
)


def scrubbed_environment() -> dict[str, str]:
    """This environment without provider keys, model overrides and Python path settings."""
    return {k: v for k, v in os.environ.items() if k not in _SCRUB}


def _call(framework: Framework, argv: list[str], timeout: float) -> tuple[dict[str, Any], float]:
    """The worker's results and the wall time of its whole process (start to exit)."""
    with tempfile.TemporaryDirectory(prefix="pyflue-bench-") as scratch:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [str(python_of(framework)), str(WORKER), *argv],
                cwd=scratch,
                env=scrubbed_environment(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"__process__": {"status": "error", "error": f"timed out after {timeout:.0f} s"}}, timeout
        wall = time.perf_counter() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :]), wall
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"__process__": {"status": "error", "error": f"exit {done.returncode}: {tail}"}}, wall


def run_worker(
    framework: Framework,
    scenarios: list[str],
    params: dict[str, dict[str, Any]],
    *,
    profile_dir: Path | None = None,
    timeout: float = 900.0,
) -> dict[str, dict[str, Any]]:
    """Results per scenario, all run in one process of ``framework``'s venv."""
    spec = {"params": params, "options": framework.options}
    if profile_dir is not None:
        spec["profile_dir"] = str(profile_dir)
    results, _ = _call(framework, [",".join(scenarios), framework.adapter, json.dumps(spec)], timeout)
    failure = results.get("__process__")
    return {
        name: failure or results.get(name, {"status": "error", "error": "no result"}) for name in scenarios
    }


def run_startup(framework: Framework, timeout: float = 300.0) -> dict[str, Any]:
    """One new process: ``import X`` timed inside it, then the first answer; plus the process wall."""
    spec = json.dumps({"options": framework.options})
    results, wall = _call(
        framework, ["startup", framework.adapter, spec, framework.import_statement], timeout
    )
    result: dict[str, Any] = results.get("__process__") or results["startup"]
    if result.get("status") == "ok":
        result["process_wall_s"] = wall
    return result
