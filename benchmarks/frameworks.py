"""The frameworks compared, each pinned and installed into its own virtualenv.

Every framework, PyFlue included, runs from its own venv under ``benchmarks/.venvs`` so all are
measured the same way: a fresh interpreter with only that framework's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FLOOR", "FRAMEWORKS", "REPO", "Framework", "select"]

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Framework:
    name: str  # CLI and result key
    label: str  # table column
    venv: str  # directory under benchmarks/.venvs
    requirements: tuple[str, ...]  # pip install arguments, pinned
    adapter: str  # module under benchmarks/worker/adapters
    import_statement: str
    distribution: str  # whose version the report records
    options: dict[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()  # scenarios this entry does not run (not "not available")


FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "pyflue", "PyFlue (this repo)", "pyflue", ("-e", str(REPO)), "pyflue", "import pyflue", "pyflue"
    ),
    Framework(
        "pyflue-0.2.0",
        "PyFlue 0.2.0",
        "pyflue-0.2.0",
        ("pyflue==0.2.0",),
        "pyflue_020",
        "import pyflue",
        "pyflue",
    ),
    Framework(
        "pydantic-ai",
        "pydantic-ai",
        "pydantic-ai",
        ("pydantic-ai-slim==2.68.0",),
        "pydantic_ai",
        "import pydantic_ai",
        "pydantic-ai-slim",
    ),
    Framework(
        "openai-agents",
        "openai-agents (tracing off)",
        "openai-agents",
        ("openai-agents==0.24.0",),
        "openai_agents",
        "import agents",
        "openai-agents",
        options={"tracing": "off"},
    ),
    Framework(
        "openai-agents-traced",
        "openai-agents (default tracing)",
        "openai-agents",
        ("openai-agents==0.24.0",),
        "openai_agents",
        "import agents",
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
        "import langgraph.prebuilt",
        "langgraph",
    ),
)

# `import pydantic, httpx, anyio` in PyFlue's venv: PyFlue's own dependencies, the import floor.
FLOOR = Framework(
    "floor",
    "floor: pydantic+httpx+anyio",
    "pyflue",
    ("-e", str(REPO)),
    "floor",
    "import pydantic, httpx, anyio",
    "pydantic",
)


def select(names: list[str] | None) -> list[Framework]:
    """The frameworks named on the command line (all by default), PyFlue always first."""
    if not names:
        return list(FRAMEWORKS)
    known = {f.name: f for f in FRAMEWORKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown framework(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [f for f in FRAMEWORKS if f.name in names]
