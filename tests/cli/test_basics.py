"""Help, version, usage errors and ``pyflue init``: what works before any project exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import assert_one_line_error, child_env, cli

COMMANDS = [
    "init",
    "run",
    "resume",
    "runs",
    "logs",
    "prompt",
    "agents",
    "workflows",
    "serve",
    "dispatch",
    "dispatches",
    "worker",
    "db",
    "mcp",
]


def test_help_lists_every_command_with_examples(tmp_path: Path) -> None:
    result = cli("--help", cwd=tmp_path)
    assert result.code == 0
    for command in COMMANDS:
        assert f"    {command}" in result.out
    assert "examples:" in result.out and "pyflue run summarize --payload" in result.out
    assert "exit codes" in result.out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_examples(command: str, tmp_path: Path) -> None:
    result = cli(command, "--help", cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"usage: pyflue {command}" in result.out
    assert "examples:" in result.out
    assert f"pyflue {command}" in result.out.split("examples:")[1]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_texts_name_each_choice_once_and_no_file_pip_users_lack(
    command: str | None, tmp_path: Path
) -> None:
    result = cli(*([command] if command else []), "--help", cwd=tmp_path)
    assert result.code == 0, result.err
    choices = re.findall(r"\{[^}]*\}", result.out.split("examples:")[0])
    assert len(choices) == len(set(choices)), choices
    assert "docs/" not in result.out and ".md" not in result.out


def test_runs_help_says_what_its_flags_print(tmp_path: Path) -> None:
    out = " ".join(cli("runs", "--help", cwd=tmp_path).out.split())
    assert "--jsonl print one run per line" in out and "every event" not in out
    assert "--status STATUS, -s STATUS" in out and "running, completed, failed, cancelled, interrupted" in out


def test_version(tmp_path: Path) -> None:
    from pyflue import __version__

    result = cli("--version", cwd=tmp_path)
    assert result.code == 0
    assert result.out.strip() == f"pyflue {__version__}"


def test_python_dash_m_is_the_same_program(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyflue_cli", "--version"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("pyflue ")


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(cli("run", cwd=tmp_path), 2, "WORKFLOW", "--help")
    assert_one_line_error(cli("frobnicate", cwd=tmp_path), 2, "invalid choice")
    assert_one_line_error(cli("runs", "--limit", "0", cwd=tmp_path), 2, "--limit")
    no_command = cli(cwd=tmp_path)
    assert no_command.code == 2 and "usage: pyflue" in no_command.err


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ('{"text": ', "invalid JSON in --payload"),
        ("text=hello", "--payload @FILE"),
        ("@missing.json", "no such file"),
    ],
)
def test_bad_payloads_exit_2_before_anything_runs(payload: str, needle: str, tmp_path: Path) -> None:
    assert_one_line_error(cli("run", "anything", "--payload", payload, cwd=tmp_path), 2, needle)


def test_bad_payload_on_stdin(tmp_path: Path) -> None:
    result = cli("run", "anything", "--payload", "-", cwd=tmp_path, input="{nope")
    assert_one_line_error(result, 2, "invalid JSON in standard input", "line 1 column 2")


def test_missing_project_directory(tmp_path: Path) -> None:
    result = cli("workflows", "--project", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert_one_line_error(result, 2, "does not exist")


@pytest.mark.parametrize(
    "args",
    [("workflows",), ("agents",), ("runs",), ("logs", "workflow:x:01J0000000000000000000000"), ("run", "x")],
)
def test_outside_a_project_every_command_says_where_it_looked(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a project")
    result = cli(*args, cwd=tmp_path)
    assert_one_line_error(
        result, 2, f"no PyFlue project in {tmp_path.resolve()} (the current directory)", "pyflue init"
    )
    elsewhere = cli(*args, "--project", str(tmp_path), cwd=tmp_path.parent)
    assert_one_line_error(elsewhere, 2, f"no PyFlue project in {tmp_path.resolve()} (--project)")
    assert not (tmp_path / ".pyflue").exists()  # nothing created where there is no project


def test_a_project_is_agents_workflows_or_a_store(tmp_path: Path) -> None:
    for marker in ("agents", "workflows", "src/workflows", ".pyflue"):
        root = tmp_path / marker.replace("/", "-")
        (root / marker).mkdir(parents=True)
        listing = cli("workflows", "--json", cwd=root)
        assert listing.code == 0, (marker, listing.err)
        assert listing.json() == {"workflows": [], "errors": []}
        assert cli("runs", cwd=root).code == 0


def test_init_writes_a_commented_project(tmp_path: Path) -> None:
    result = cli("init", "my-project", cwd=tmp_path)
    assert result.code == 0, result.err
    root = tmp_path / "my-project"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == {
        ".gitignore",
        "README.md",
        "payload.json",
        "agents/assistant.py",
        "workflows/summarize.py",
    }
    agent = (root / "agents/assistant.py").read_text()
    assert "define_tool" in agent and "define_agent_profile" in agent and "PYFLUE_MODEL" in agent
    assert "# my-project" in (root / "README.md").read_text()
    assert "cd my-project && pyflue run summarize" in result.out


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert_one_line_error(cli("init", "taken", cwd=tmp_path), 2, "not empty")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    assert_one_line_error(cli("init", "file", cwd=tmp_path), 2, "not a directory")


def test_init_fills_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("init", ".", cwd=tmp_path / "empty")
    assert result.code == 0, result.err
    assert (tmp_path / "empty" / "workflows" / "summarize.py").exists()
    assert "  pyflue run summarize" in result.out and "cd ." not in result.out


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    """`pyflue --help` is benchmarked: it must not load the core's heavy parts, rich or providers."""
    code = (
        "import sys\n"
        "from pyflue_cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('rich', 'pydantic', 'httpx', 'anyio', 'pyflue.agent', 'pyflue.project', 'sqlite3')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
