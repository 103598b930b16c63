"""Worker entry point, run as a script by each framework's own interpreter.

``python worker/main.py SCENARIO[,SCENARIO...] ADAPTER SPEC_JSON [IMPORT_STATEMENT]`` prints one line
``BENCH-RESULT {scenario: result}``; ``startup`` runs alone and needs the import statement to time.
It runs as a script (never ``-m benchmarks...``) so only ``benchmarks/worker`` joins ``sys.path``:
the repository root must not, or the PyFlue 0.2.0 venv would import this repository's ``pyflue``.

The ``startup`` scenario times ``import X`` before this module imports anything beyond ``sys`` and
``time``, so a framework is not credited with modules the worker would have loaded for it.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would be charged to the frameworks
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_START = time.perf_counter()


def _startup(import_statement: str, adapter_name: str, raw_spec: str) -> dict[str, object]:
    """Import time and peak RSS of ``import X`` in a new process, then the time to a first answer
    (import, build the agent, one prompt on the scripted model). ``adapter_name`` ``floor`` stops
    after the import."""
    begin = time.perf_counter()
    exec(import_statement, {})
    imported = time.perf_counter()
    import json

    from probes import peak_rss

    spec = json.loads(raw_spec)

    result: dict[str, object] = {"import_s": imported - begin, "import_peak_rss": peak_rss()}
    if adapter_name != "floor":
        import asyncio
        import importlib

        adapter = importlib.import_module(f"adapters.{adapter_name}").create(dict(spec.get("options", {})))

        async def first_answer() -> None:
            agent = await adapter.agent("text")
            await (await agent.conversation("first")).prompt("hello")

        asyncio.run(first_answer())
        result["first_answer_s"] = time.perf_counter() - begin
        result["first_answer_peak_rss"] = peak_rss()
    result["process_s"] = time.perf_counter() - _START
    return result


def _run_one(scenario: str, adapter_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio
    import importlib

    params = dict(spec["params"][scenario])
    if scenario in ("sse", "session_append", "workflow"):
        import pyflue_only

        coroutine = pyflue_only.SCENARIOS[scenario](params)
    else:
        from scenarios import SCENARIOS

        adapter = importlib.import_module(f"adapters.{adapter_name}").create(dict(spec.get("options", {})))
        coroutine = SCENARIOS[scenario](adapter, params)
    profile_dir = spec.get("profile_dir")
    if not profile_dir:
        return asyncio.run(coroutine)
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    result: dict[str, Any] = profiler.runcall(asyncio.run, coroutine)
    with open(f"{profile_dir}/{scenario}.txt", "w") as out:
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    return result


def _guarded(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A scenario's result, or why it has none: not available (a missing feature) or an error."""
    try:
        return {"status": "ok", **run()}
    except Exception as exc:
        from probes import NotAvailable

        if isinstance(exc, NotAvailable):
            return {"status": "not_available", "reason": str(exc)}
        import traceback

        traceback.print_exc()
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str]) -> int:
    """``argv``: SCENARIOS (comma-separated) ADAPTER SPEC_JSON [IMPORT_STATEMENT]."""
    scenarios, adapter_name, raw_spec = argv[1].split(","), argv[2], argv[3]
    if scenarios == ["startup"]:
        results = {"startup": _guarded(lambda: _startup(argv[4], adapter_name, raw_spec))}
    else:
        import json

        spec = json.loads(raw_spec)
        results = {name: _guarded(lambda name=name: _run_one(name, adapter_name, spec)) for name in scenarios}
    import json

    sys.stdout.flush()
    print("BENCH-RESULT " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
