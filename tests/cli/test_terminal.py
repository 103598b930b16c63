"""The live view on a (pseudo-)terminal: spinner, tool lines, nesting, summary; stderr stays clean."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import child_env, cli, run_in_pty

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def plain(screen: str) -> str:
    return _ANSI.sub("", screen).replace("\r", "\n")


def test_run_shows_a_spinner_while_waiting_then_a_summary(lab: Path, gate: Path) -> None:
    env = child_env(PYFLUE_TEST_GATE=str(gate))
    # The gate opens only once the spinner is on screen, showing the tool it waits on.
    result = run_in_pty("run", "gated", cwd=lab, env=env, when=("wait_for_gate", gate.touch))
    assert result.code == 0, result.err
    assert result.err == ""
    text = plain(result.screen)
    assert "\x1b[" in result.screen  # colours: a real terminal was detected
    assert any(ch in text for ch in _SPINNER)
    assert re.search(r"tool wait_for_gate\(\)\s+\d", text)  # the spinner's label, with elapsed time
    assert re.search(r"✓ wait_for_gate\s+[\d.]+ m?s\s+→ open", text)  # one line per tool, duration
    assert "info    waiting for the gate" in text
    assert '"answer"' in text  # the result
    assert re.search(r"✓ completed in [\d.]+ m?s · \d+ tokens .* · test", text)


def test_run_nests_subagent_tasks(created: Path) -> None:
    result = run_in_pty("run", "summarize", "--payload", '{"text": "a b"}', cwd=created, env=child_env())
    assert result.code == 0, result.err
    assert result.err == ""  # PYFLUE_MODEL=test: the person asked for the test model, no note
    lines = plain(result.screen).splitlines()
    task = next(i for i, line in enumerate(lines) if line.startswith("↳ task reviewer"))
    assert any(line.startswith("  ✓ count_words") for line in lines[task:])  # the child's tool, indented
    assert any(line.startswith("↲ task reviewer done") for line in lines[task:])
    assert "✓ completed in" in lines[-2] + lines[-1]


def test_failed_run_on_a_terminal(lab: Path) -> None:
    result = run_in_pty("run", "boom", cwd=lab, env=child_env())
    assert result.code == 1
    assert result.err == "pyflue: RuntimeError: boom\n"
    text = plain(result.screen)
    assert "info    about to fail" in text and "✗ failed in" in text
    assert "RuntimeError" not in text  # said once, on stderr


def test_json_wins_over_the_terminal(lab: Path) -> None:
    result = run_in_pty("run", "typed", "--payload", '{"count": 3}', "--json", cwd=lab, env=child_env())
    assert result.code == 0
    assert "\x1b[" not in result.screen and '"result": {"double": 6}' in result.screen


def test_logs_on_a_terminal_renders_the_run(lab: Path) -> None:
    run_id = cli("run", "boom", "--json", cwd=lab).json()["run_id"]
    result = run_in_pty("logs", run_id, cwd=lab, env=child_env())
    assert result.code == 0, result.err
    text = plain(result.screen)
    assert f"▶ boom  {run_id}" in text
    assert "RuntimeError: boom" in text and "✗ failed in" in text
    # The run_end carries the traceback: logs shows it under the error, indented.
    assert "  Traceback (most recent call last):" in text
    assert re.search(r'workflows/boom\.py", line \d+, in run', text)
    assert text.index("Traceback") > text.index("RuntimeError: boom")
    only_logs = plain(run_in_pty("logs", run_id, "--types", "log", cwd=lab, env=child_env()).screen)
    assert "about to fail" in only_logs and "✗ failed in" in only_logs  # the summary from the record
    assert "Traceback" not in only_logs  # it belongs to the run_end, which --types left out


def test_runs_and_listings_on_a_terminal_are_tables(lab: Path) -> None:
    runs = plain(run_in_pty("runs", "--limit", "3", cwd=lab, env=child_env()).screen)
    assert "run id" in runs and "status" in runs and "workflow:" in runs
    workflows = plain(run_in_pty("workflows", cwd=lab, env=child_env()).screen)
    assert "name" in workflows and "gated" in workflows and "A workflow that fails." in workflows


def test_prompt_streams_text_on_a_terminal(created: Path) -> None:
    result = run_in_pty("prompt", "assistant", "tty-case", "How many words?", cwd=created, env=child_env())
    assert result.code == 0, result.err
    text = plain(result.screen)
    assert "● assistant (tty-case) · prompt  How many words?" in text
    assert "✓ count_words" in text and "✓ completed in" in text


def frames(screen: str) -> list[str]:
    """The screen split where the live region was redrawn: rich moves the cursor back with a bare
    carriage return, while the lines of one drawing end in CR LF (the terminal's newline)."""
    return re.split(r"\r(?!\n)", _ANSI.sub("", screen))


_RUNNING = ("tool first_wait()", "tool second_wait()", "task helper", "tool helper_wait()")


def _all_running_at_once(screen: str) -> bool:
    return any(all(label in frame for label in _RUNNING) for frame in frames(screen))


def test_every_running_tool_and_task_has_its_own_line(lab: Path, gate: Path) -> None:
    """The test model calls both tools and the subagent at once; all wait on the gate, which opens
    only once one drawing of the live region shows every one of them, each on its own line."""
    env = child_env(PYFLUE_TEST_GATE=str(gate))
    result = run_in_pty("run", "parallel", cwd=lab, env=env, when=(_all_running_at_once, gate.touch))
    assert result.code == 0, result.err
    frame = next(f for f in frames(result.screen) if all(label in f for label in _RUNNING))
    region = [line for line in frame.split("\r\n") if any(label in line for label in _RUNNING)]
    assert len(region) == len(_RUNNING), region  # one line each
    assert any(line.startswith("  ") and "tool helper_wait()" in line for line in region)  # nested
    text = plain(result.screen)
    for tool in ("first_wait", "second_wait"):
        assert re.search(rf"✓ {tool}\s+[\d.]+ m?s\s+→ open", text)
    # Each line goes when its activity ends: the last drawing shows none of them.
    assert not any(label in frames(result.screen)[-1] for label in _RUNNING)


def test_offline_first_run_says_once_that_it_used_the_test_model(created: Path) -> None:
    """No key, no PYFLUE_MODEL: the init template falls back to the test model by itself."""
    args = ("run", "summarize", "--payload", '{"text": "a b"}')
    result = run_in_pty(*args, cwd=created, env=child_env(None))
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyflue: note: this ran on the built-in test model")
    assert "export ANTHROPIC_API_KEY" in lines[0] and "PYFLUE_MODEL" in lines[0]
    assert "✓ completed in" in plain(result.screen)
    # A script never sees it: --json on the terminal, or stdout piped.
    assert run_in_pty(*args, "--json", cwd=created, env=child_env(None)).err == ""
    assert cli(*args, cwd=created, env=child_env(None)).err == ""


@pytest.fixture
def without_rich(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import rich`` fails the way it does when the ``cli`` extra is not
    installed: a module named ``rich`` earlier on the path raises the same ModuleNotFoundError."""
    shadow = tmp_path / "no-rich"
    shadow.mkdir()
    (shadow / "rich.py").write_text('raise ModuleNotFoundError("No module named \'rich\'", name="rich")\n')
    env = child_env()
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(shadow), env.get("PYTHONPATH")]))}


def test_without_rich_a_terminal_gets_plain_lines_and_one_note(
    lab: Path, without_rich: dict[str, str]
) -> None:
    result = run_in_pty("run", "typed", "--payload", '{"count": 2}', cwd=lab, env=without_rich)
    assert result.code == 0, result.err
    assert result.err == (
        "pyflue: note: plain output: rich is not installed; pip install 'pyflue[cli]' for the live view\n"
    )
    assert "\x1b[" not in result.screen  # no colours: rich really was not used
    text = plain(result.screen)
    assert "▶ typed  workflow:typed:" in text and '"double": 4' in text and "✓ completed in" in text
    failed = run_in_pty("run", "boom", cwd=lab, env=without_rich)
    assert failed.code == 1 and failed.err.splitlines()[-1] == "pyflue: RuntimeError: boom"
    runs = run_in_pty("runs", "--limit", "2", cwd=lab, env=without_rich)
    assert runs.code == 0 and re.search(r"^run id\s+status\s+started", plain(runs.screen), re.M)
    listing = run_in_pty("workflows", cwd=lab, env=without_rich)
    assert listing.code == 0 and re.search(r"^boom\s+A workflow that fails\.", plain(listing.screen), re.M)
