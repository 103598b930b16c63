"""The public API: every name in ``pyflue.__all__`` resolves, and ``import pyflue`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pyflue


def test_every_public_name_resolves() -> None:
    missing = [name for name in pyflue.__all__ if getattr(pyflue, name, None) is None]
    assert missing == []


def test_dir_lists_the_public_api() -> None:
    assert set(dir(pyflue)) == set(pyflue.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        pyflue.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("pyflue.no_such_name resolved")


def test_import_is_light() -> None:
    """Providers, stores, adapters, OpenTelemetry and even pydantic load only when used."""
    code = (
        "import sys, pyflue; heavy = [m for m in ('pydantic', 'httpx', 'opentelemetry', 'rich', 'sqlite3', "
        "'pyflue.models.anthropic', 'pyflue.models.openai', 'pyflue_cli') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
