"""The frameworks compared, each pinned and installed into its own virtualenv.

Every framework, PyFlue included, runs from its own venv under ``benchmarks/.venvs`` so all are
measured the same way: a fresh interpreter with only that framework's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BARE",
    "FLOOR",
    "FRAMEWORKS",
    "IMPORT_ONLY",
    "REPO",
    "USER_IMPORT",
    "UVICORN",
    "Framework",
    "select",
]

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Framework:
    name: str  # CLI and result key
    label: str  # table column
    venv: str  # directory under benchmarks/.venvs
    requirements: tuple[str, ...]  # pip install arguments, pinned
    adapter: str  # module under benchmarks/worker/adapters
    import_statement: str  # what the framework's users write (its docs' first example), timed at startup
    distribution: str  # whose version the report records
    options: dict[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()  # scenarios this entry does not run (not "not available")


# The HTTP benchmark runs each server under the same uvicorn in its own venv (benchmarks/http_serving.py);
# this repository's venv takes the ``asgi`` extra for ``pyflue_asgi``. Neither extra is imported by the
# other scenarios.
UVICORN = "uvicorn==0.54.0"
_REPO_PINS = ("-e", f"{REPO}[asgi]", UVICORN)

# What PyFlue's users write (README, docs/agents.md); ``import pyflue`` alone loads almost nothing.
USER_IMPORT = "from pyflue import create_agent, init, define_tool"

FRAMEWORKS: tuple[Framework, ...] = (
    Framework("pyflue", "PyFlue (this repo)", "pyflue", _REPO_PINS, "pyflue", USER_IMPORT, "pyflue"),
    Framework(
        "pyflue-0.2.0",
        "PyFlue 0.2.0",
        "pyflue-0.2.0",
        ("pyflue==0.2.0", UVICORN),
        "pyflue_020",
        "from pyflue import create_agent, init, define_tool",
        "pyflue",
    ),
    Framework(
        "pydantic-ai",
        "pydantic-ai",
        "pydantic-ai",
        ("pydantic-ai-slim==2.68.0",),
        "pydantic_ai",
        "from pydantic_ai import Agent",
        "pydantic-ai-slim",
    ),
    Framework(
        "openai-agents",
        "openai-agents (tracing off)",
        "openai-agents",
        ("openai-agents==0.24.0",),
        "openai_agents",
        "from agents import Agent, Runner, function_tool",
        "openai-agents",
        options={"tracing": "off"},
    ),
    Framework(
        "openai-agents-traced",
        "openai-agents (default tracing)",
        "openai-agents",
        ("openai-agents==0.24.0",),
        "openai_agents",
        "from agents import Agent, Runner, function_tool",
        "openai-agents",
        options={"tracing": "default"},
        # Same import and retained history as with tracing off; only the per-run paths differ.
        skip=frozenset({"startup", "memory"}),
    ),
    Framework(
        "langgraph",
        "LangGraph (prebuilt ReAct)",
        "langgraph",
        ("langgraph==1.2.24", "langchain-core==1.8.3"),
        "langgraph",
        "from langgraph.prebuilt import create_react_agent",
        "langgraph",
    ),
)

# `import pydantic, httpx, anyio` in PyFlue's venv: PyFlue's own dependencies, the import floor.
FLOOR = Framework(
    "floor",
    "floor: pydantic+httpx+anyio",
    "pyflue",
    _REPO_PINS,
    "floor",
    "import pydantic, httpx, anyio",
    "pydantic",
)
# The bare package import: its names resolve on first use (PEP 562), so this is a floor of its own.
BARE = Framework(
    "pyflue-bare",
    "bare `import pyflue`",
    "pyflue",
    _REPO_PINS,
    "floor",
    "import pyflue",
    "pyflue",
)
# Startup entries that only time their import (no adapter, no first answer).
IMPORT_ONLY: tuple[Framework, ...] = (FLOOR, BARE)


def select(names: list[str] | None) -> list[Framework]:
    """The frameworks named on the command line (all by default), PyFlue always first."""
    if not names:
        return list(FRAMEWORKS)
    known = {f.name: f for f in FRAMEWORKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown framework(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [f for f in FRAMEWORKS if f.name in names]
