"""The core's modules import only downward: no import circle, including imports inside functions.

Every ``import`` / ``from ... import`` statement of ``pyflue/`` is read from the source (module level,
function bodies and ``if TYPE_CHECKING:`` blocks alike), resolved to the ``pyflue`` module it names,
and the graph is searched for cycles. A package's ``__init__`` counts as importing what it
re-exports, and importing ``a.b`` runs ``a/__init__`` first, so both edges are in the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "pyflue"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``pyflue`` modules that module ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for target in targets:
            # the deepest pyflue module the statement names (``from .x import y``: y may be a module)
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A module's own packages are imported before it runs: naming one is no new edge.
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for target in list(found):
        parts = target.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in known and parent != name and not name.startswith(parent + "."):
                found.add(parent)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# The top-level package re-exports the public API lazily (by module name, not by import statement),
# so it is the root of the graph and imports nothing of its own.
TOP = "pyflue"


def test_the_core_has_no_import_circle() -> None:
    graph = _graph()
    graph.pop(TOP, None)
    for targets in graph.values():
        targets.discard(TOP)
    assert "pyflue.session" in graph and "pyflue.loop" in graph["pyflue.agent"]
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("pyflue.session", "pyflue.loop"),
        ("pyflue.loop", "pyflue.agent"),
        ("pyflue.config", "pyflue.agent"),
        ("pyflue.workflow", "pyflue.project"),
        ("pyflue.models.base", "pyflue.session"),
    ],
)
def test_layers_import_only_downward(lower: str, upper: str) -> None:
    """A few load-bearing edges of the layering, named so a violation says which layer broke."""
    graph = _graph()

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    assert reaches(upper, lower), f"{upper} should build on {lower}"
    assert not reaches(lower, upper), f"{lower} must not import {upper} (directly or not)"


def test_the_cycle_finder_finds_a_circle() -> None:
    """The check above can fail: a planted circle is found, with its path."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
