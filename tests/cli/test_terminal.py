"""The live view on a (pseudo-)terminal: spinner, tool lines, nesting, summary; stderr stays clean."""

from __future__ import annotations

import re
from pathlib import Path

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
    only_logs = plain(run_in_pty("logs", run_id, "--types", "log", cwd=lab, env=child_env()).screen)
    assert "about to fail" in only_logs and "✗ failed in" in only_logs  # the summary from the record


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
