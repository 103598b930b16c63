"""One virtualenv per framework under ``benchmarks/.venvs``, created once and then reused.

A venv is reused while its recorded requirements match the pinned ones; changing a pin reinstalls.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .frameworks import Framework

__all__ = ["VENVS", "ensure", "python_of", "version_of"]

VENVS = Path(__file__).resolve().parent / ".venvs"
_MARKER = "bench-requirements.txt"


def python_of(framework: Framework) -> Path:
    return VENVS / framework.venv / "bin" / "python"


def ensure(framework: Framework, log: bool = True) -> Path:
    """The venv's interpreter, creating the venv and installing the pins if needed."""
    root = VENVS / framework.venv
    python = python_of(framework)
    wanted = "\n".join(framework.requirements) + "\n"
    marker = root / _MARKER
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if log:
        pins = " ".join(framework.requirements)
        print(f"[bench] preparing benchmarks/.venvs/{framework.venv}: pip install {pins}", file=sys.stderr)
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *framework.requirements,
        ],
        check=True,
    )
    marker.write_text(wanted)
    return python


def version_of(framework: Framework) -> str:
    """The installed version of the framework's distribution, as its own venv reports it."""
    code = f"import importlib.metadata as m; print(m.version({framework.distribution!r}))"
    out = subprocess.run([str(python_of(framework)), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"
