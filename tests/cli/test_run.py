"""``pyflue run`` without a terminal: the result, --json, --jsonl, --stream, errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Child, assert_one_line_error, child_env, cli, interrupt, no_traceback


def test_init_project_runs_offline_without_pyflue_model(created: Path) -> None:
    """`pyflue init` + `pyflue run` as the README says: no key, no PYFLUE_MODEL, it still runs."""
    result = cli(
        "run", "summarize", "--payload", '{"text": "PyFlue runs agents."}', cwd=created, env=child_env(None)
    )
    assert result.code == 0, result.err
    assert result.err == ""
    assert set(result.json()) == {"summary", "review"}


def test_payload_from_a_file_and_from_stdin(created: Path) -> None:
    from_file = cli("run", "summarize", "--payload", "@payload.json", cwd=created)
    from_stdin = cli("run", "summarize", "--payload", "-", cwd=created, input='{"text": "hello"}')
    for result in (from_file, from_stdin):
        assert result.code == 0, result.err
        assert "summary" in result.json()


def test_json_is_one_object_with_the_run(created: Path) -> None:
    result = cli("run", "summarize", "--payload", '{"text": "a b c"}', "--json", cwd=created)
    assert result.code == 0, result.err
    data = result.json()
    assert data["status"] == "completed" and data["error"] is None
    assert data["run_id"].startswith("workflow:summarize:")
    assert set(data["result"]) == {"summary", "review"}
    assert data["usage"]["requests"] >= 2 and data["duration_ms"] > 0


def test_jsonl_is_every_event_in_order(created: Path) -> None:
    result = cli("run", "summarize", "--payload", '{"text": "a b c"}', "--jsonl", cwd=created)
    assert result.code == 0, result.err
    events = result.jsonl()
    assert events[0]["type"] == "run_start" and events[-1]["type"] == "run_end"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = {e["type"] for e in events}
    assert {
        "log",
        "operation_start",
        "tool_start",
        "tool_end",
        "task_start",
        "task_end",
        "text_delta",
    } <= types
    assert events[-1]["data"]["status"] == "completed"
    # Every line is the same run, and `pyflue logs` reads the same log back from the store.
    run_id = events[0]["run_id"]
    assert {e["run_id"] for e in events} == {run_id}
    stored = cli("logs", run_id, cwd=created).jsonl()
    assert [e["seq"] for e in stored if e["type"] != "text_delta"] == [
        e["seq"] for e in events if e["type"] != "text_delta"
    ]


def test_stream_without_a_terminal_is_plain_text(created: Path) -> None:
    result = cli("run", "summarize", "--payload", '{"text": "a b c"}', "--stream", cwd=created)
    assert result.code == 0, result.err
    assert "\x1b[" not in result.out  # no colour codes, no spinner
    lines = result.out.splitlines()
    assert lines[0].startswith("▶ summarize  workflow:summarize:")
    assert any(line.startswith("✓ count_words") for line in lines)  # one line per tool call
    assert any(line.startswith("  ✓ count_words") for line in lines)  # nested under a task
    assert any(line.startswith("↳ task reviewer") for line in lines)
    assert lines[-1].startswith("✓ completed in ") and "tokens" in lines[-1] and "test" in lines[-1]


def test_failed_run_exits_1_with_one_line(lab: Path) -> None:
    result = cli("run", "boom", cwd=lab)
    assert_one_line_error(result, 1, "RuntimeError: boom")
    assert result.out == ""
    as_json = cli("run", "boom", "--json", cwd=lab)
    assert as_json.code == 1
    error = as_json.json()["error"]
    assert (error["type"], error["message"]) == ("RuntimeError", "boom")
    assert error["traceback"].rstrip().endswith("RuntimeError: boom")  # the record's, as stored


def test_verbose_prints_the_traceback_of_a_failed_run(lab: Path) -> None:
    result = cli("-v", "run", "boom", cwd=lab)
    assert result.code == 1 and result.out == ""
    lines = result.err.rstrip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any('workflows/boom.py", line' in line for line in lines)
    assert 'raise RuntimeError("boom")' in result.err
    assert lines[-1] == "pyflue: RuntimeError: boom"  # the summary stays the last line


def test_unknown_workflow_exits_2_and_lists_the_known_ones(lab: Path) -> None:
    result = cli("run", "nope", cwd=lab)
    assert_one_line_error(result, 2, "no workflow named 'nope'", "boom, gated, needs_key, parallel, typed")


def test_payload_validation_error_exits_2(lab: Path) -> None:
    result = cli("run", "typed", "--payload", '{"count": "many"}', cwd=lab)
    assert_one_line_error(result, 2, "PayloadValidationError", "count")
    assert cli("run", "typed", "--payload", '{"count": 4}', cwd=lab).json() == {"double": 8}


def test_missing_key_names_the_variable_and_the_offline_switch(lab: Path) -> None:
    """The key is missing inside the workflow, so a run was recorded, and failed: exit 1, not the
    "nothing ran" 2."""
    result = cli("run", "needs_key", "--json", cwd=lab, env=child_env(None))
    assert_one_line_error(result, 1, "ANTHROPIC_API_KEY", "PYFLUE_MODEL=test")
    run_id = result.json()["run_id"]
    failed = cli("runs", "--workflow", "needs_key", "--status", "failed", cwd=lab).jsonl()
    assert run_id in [r["run_id"] for r in failed]
    assert cli("run", "needs_key", cwd=lab).code == 0  # PYFLUE_MODEL=test: offline


def test_a_missing_key_before_any_run_still_exits_2(lab: Path) -> None:
    """`prompt` records no run: a key missing there means nothing ran."""
    result = cli("prompt", "needs_key", "x", "hi", cwd=lab, env=child_env(None))
    assert_one_line_error(result, 2, "ANTHROPIC_API_KEY")


def test_verbose_shows_the_traceback(lab: Path) -> None:
    result = cli("run", "typed", "--payload", "{}", "--verbose", cwd=lab)
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.strip().splitlines()[-1].startswith("pyflue: PayloadValidationError")


def test_ctrl_c_cancels_the_run_and_keeps_its_events(lab: Path, gate: Path) -> None:
    child = Child("run", "gated", "--jsonl", cwd=lab, env=child_env(PYFLUE_TEST_GATE=str(gate)))
    try:
        started = child.read_until(lambda e: e["type"] == "tool_start")
        interrupt(child)
        code, err = child.finish()
    finally:
        child.kill()
    assert code == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"pyflue: interrupted; run {started['run_id']} cancelled"]
    end = child.lines[-1]
    assert end["type"] == "run_end" and end["data"]["status"] == "cancelled"
    assert "Ctrl-C" in end["data"]["error"]["message"]
    record = json.loads(cli("runs", "--workflow", "gated", "--status", "cancelled", "--json", cwd=lab).out)
    assert started["run_id"] in [r["run_id"] for r in record["runs"]]
    stored = cli("logs", started["run_id"], cwd=lab).jsonl()
    assert [e["type"] for e in stored][:6] == [
        "run_start",
        "log",
        "operation_start",
        "model_start",
        "model_end",
        "tool_start",
    ]
    assert stored[-1]["type"] == "run_end" and stored[-1]["data"]["status"] == "cancelled"
    no_traceback(cli("runs", cwd=lab))


def test_timeout_cancels_the_run_and_exits_1(lab: Path, gate: Path) -> None:
    result = cli(
        "run", "gated", "--timeout", "0.3", "--json", cwd=lab, env=child_env(PYFLUE_TEST_GATE=str(gate))
    )
    assert result.code == 1
    data = result.json()
    assert data["status"] == "cancelled" and data["error"]["reason"] == "timeout"
    assert (
        result.err.startswith("pyflue: RunCancelledError: the run timed out")
        and "Traceback" not in result.err
    )
