"""Every Python and shell snippet in README.md and docs/ runs, so a renamed function breaks a test,
not a user. The conventions a snippet follows are in docs/README.md ("Snippets are tested")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"(<!--\s*docs-test:\s*skip\s*-->\s*\n)?```(\w+)?[^\n]*\n(.*?)```", re.DOTALL)
_FILE_MARK = re.compile(r"^#\s*([\w./-]+\.(?:py|json|toml|txt|md))\s*$")
_SKIP_COMMANDS = (
    "python3 -m venv",
    ". .venv/bin/activate",
    "source .venv/bin/activate",
    "pip ",
    "python -m pip",
    "python -m pytest",
    "pytest",
    "nox",
    "git ",
)


def _steps(text: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for skip, lang, body in _BLOCK.findall(text):
        if skip:
            continue
        lang = (lang or "").lower()
        if lang == "python":
            first = body.splitlines()[0] if body.strip() else ""
            mark = _FILE_MARK.match(first)
            steps.append(("file:" + mark.group(1), body) if mark else ("python", body))
        elif lang in ("bash", "sh", "shell", "console"):
            for line in body.splitlines():
                line = line.strip().removeprefix("$ ")
                if not line or line.startswith("#"):
                    continue
                for part in re.split(r"\s+&&\s+", line):
                    part = re.sub(r"\s+#.*$", "", part).strip()
                    if part and not part.startswith(_SKIP_COMMANDS):
                        steps.append(("shell", part))
    return steps


_RUNNER = r"""
import ast, asyncio, os, shlex, subprocess, sys, json
steps = json.loads(sys.argv[1])
namespace = {"__name__": "__docs__"}
for kind, body in steps:
    if kind.startswith("file:"):
        path = kind[5:]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(body)
    elif kind == "python":
        code = compile(body, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    else:
        argv = shlex.split(body)
        if argv[0] == "cd":
            os.chdir(argv[1]); continue
        if argv[0] == "export":
            key, _, value = argv[1].partition("="); os.environ[key] = value; continue
        if argv[0] == "python":
            argv[0] = sys.executable
        shell = any(c in body for c in "|<>$")
        proc = subprocess.run(
            body if shell else argv, shell=shell, capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0 and not body.rstrip().endswith("|| true"):
            sys.exit(f"command failed ({proc.returncode}): {body}\n{proc.stdout}\n{proc.stderr}")
"""


def _documents() -> list[Path]:
    return [doc for doc in DOCS if doc.exists() and _steps(doc.read_text())]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_snippets_run(doc: Path, tmp_path: Path) -> None:
    import json

    steps = _steps(doc.read_text())
    env = {**os.environ, "PYFLUE_MODEL": "test", "PYTHONPATH": str(ROOT)}
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        env.pop(var, None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # Snippets run from the repository's examples when they name them, else from a fresh directory.
    shutil.copytree(
        ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns(".pyflue", "__pycache__")
    )
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(steps)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{doc.name}: {proc.stdout}\n{proc.stderr}"


def test_the_docs_have_snippets() -> None:
    """The harness itself finds snippets (a broken regex must not pass every doc vacuously)."""
    assert _steps("```python\nx = 1\n```\n") == [("python", "x = 1\n")]
    assert _steps("```bash\n$ pyflue run a && cd b  # c\n```") == [
        ("shell", "pyflue run a"),
        ("shell", "cd b"),
    ]
    assert _steps("<!-- docs-test: skip -->\n```python\nx\n```") == []
    assert _steps("```python\n# agents/a.py\nx\n```")[0][0] == "file:agents/a.py"
