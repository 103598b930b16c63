"""The README's first command runs examples/quickstart, which is exactly what `pyflue init` writes,
and it runs offline with no key and no PYFLUE_MODEL (the template falls back to `test`)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import child_env, cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".pyflue" not in p.parts and "__pycache__" not in p.parts
    }


def test_pyflue_init_writes_the_quickstart_example(tmp_path: Path) -> None:
    result = cli("init", "quickstart", cwd=tmp_path)  # the README names the project after its directory
    assert result.code == 0, result.err
    assert _files(tmp_path / "quickstart") == _files(EXAMPLE)


def test_the_example_runs_offline_without_any_model_setting(tmp_path: Path) -> None:
    result = cli("init", "demo", cwd=tmp_path)
    assert result.code == 0, result.err
    run = cli(
        "run",
        "summarize",
        "--project",
        str(tmp_path / "demo"),
        "--payload",
        '{"text": "a b c"}',
        "--json",
        cwd=tmp_path,
        env=child_env(model=None),
    )
    assert run.code == 0, run.err
    body = run.json()
    assert body["status"] == "completed"
    assert set(body["result"]) == {"summary", "review"}
