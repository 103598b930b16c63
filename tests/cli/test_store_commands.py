"""``pyflue runs`` and ``pyflue logs``: reading the store, also while another process runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Child, assert_one_line_error, child_env, cli


@pytest.fixture(scope="module")
def history(workdir: Path) -> tuple[Path, list[str]]:
    """A project of its own with a known history: typed ok, boom failed, typed ok (newest last)."""
    import shutil

    from .conftest import PROJECTS

    root = workdir / "history"
    shutil.copytree(PROJECTS / "lab", root, ignore=shutil.ignore_patterns("__pycache__", ".pyflue"))
    ids = []
    for args in (("typed", "--payload", '{"count": 1}'), ("boom",), ("typed", "--payload", '{"count": 2}')):
        result = cli("run", *args, "--json", cwd=root)
        ids.append(result.json()["run_id"])
    return root, ids


def test_runs_lists_newest_first(history: tuple[Path, list[str]]) -> None:
    root, ids = history
    rows = cli("runs", cwd=root).jsonl()  # not a terminal: one JSON object per line
    assert [r["run_id"] for r in rows] == ids[::-1]
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]
    assert rows[1]["error"] == {"type": "RuntimeError", "message": "boom"}  # a listing: no traceback


def test_runs_filters_and_pages(history: tuple[Path, list[str]]) -> None:
    root, ids = history
    failed = cli("runs", "--workflow", "boom", "--status", "failed", cwd=root).jsonl()
    assert [r["run_id"] for r in failed] == [ids[1]]
    first = cli("runs", "--limit", "2", "--json", cwd=root).json()
    assert [r["run_id"] for r in first["runs"]] == ids[:0:-1]
    second = cli("runs", "--limit", "2", "--cursor", first["next_cursor"], "--json", cwd=root).json()
    assert [r["run_id"] for r in second["runs"]] == [ids[0]] and second["next_cursor"] is None
    assert cli("runs", "--workflow", "nothing", cwd=root).out == ""


def test_runs_bad_cursor_and_status_exit_2(history: tuple[Path, list[str]]) -> None:
    root, _ = history
    assert_one_line_error(cli("runs", "--cursor", "garbage!", cwd=root), 2, "cursor")
    assert_one_line_error(cli("runs", "--status", "exploded", cwd=root), 2, "invalid choice")


def test_runs_and_logs_do_not_import_the_project(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    """A broken file must not stop anyone from reading what already ran."""
    root, ids = history
    (root / "workflows" / "zz_broken.py").write_text("raise SystemExit('broken on purpose')\n")
    try:
        assert cli("runs", cwd=root).code == 0
        assert cli("logs", ids[0], cwd=root).code == 0
    finally:
        (root / "workflows" / "zz_broken.py").unlink()
    (tmp_path / "workflows").mkdir()
    assert cli("runs", cwd=tmp_path).out == ""  # a project with no store yet: no runs, nothing created
    assert not (tmp_path / ".pyflue").exists()


def test_logs_prints_the_whole_log(history: tuple[Path, list[str]]) -> None:
    root, ids = history
    events = cli("logs", ids[1], cwd=root).jsonl()
    assert [e["type"] for e in events] == ["run_start", "log", "run_end"]
    assert events[-1]["data"]["error"]["message"] == "boom"
    only = cli("logs", ids[1], "--types", "log", cwd=root).jsonl()
    assert [e["data"]["message"] for e in only] == ["about to fail"]
    after = cli("logs", ids[1], "--after-seq", "2", cwd=root).jsonl()
    assert [e["seq"] for e in after] == [3]


def test_logs_unknown_run_exits_2(history: tuple[Path, list[str]]) -> None:
    root, _ = history
    assert_one_line_error(cli("logs", "workflow:typed:01J0000000000000000000000", cwd=root), 2, "no run")


def test_logs_follow_from_another_process_sees_every_event_in_order(lab: Path, gate: Path) -> None:
    runner = Child("run", "gated", "--jsonl", cwd=lab, env=child_env(PYFLUE_TEST_GATE=str(gate)))
    follower: Child | None = None
    try:
        start = runner.read_until(lambda e: e["type"] == "run_start")
        follower = Child("logs", start["run_id"], "--follow", "--jsonl", cwd=lab, env=child_env())
        # The follower sees the run live (it is blocked in its tool) before the gate opens.
        follower.read_until(lambda e: e["type"] == "tool_start")
        gate.touch()
        run_code, run_err = runner.finish()
        follow_code, follow_err = follower.finish()
    finally:
        runner.kill()
        if follower is not None:
            follower.kill()
    assert run_code == 0, run_err
    assert follow_code == 0, follow_err
    followed = follower.lines
    stored = cli("logs", start["run_id"], cwd=lab).jsonl()
    assert followed == stored  # every stored event, in order, nothing twice
    seqs = [e["seq"] for e in followed]
    assert seqs == sorted(set(seqs)) and followed[-1]["type"] == "run_end"
    # Apart from text deltas (which the store may coalesce), the follower saw what the runner emitted.
    lifecycle = [(e["seq"], e["type"]) for e in runner.lines if e["type"] != "text_delta"]
    assert [(e["seq"], e["type"]) for e in followed if e["type"] != "text_delta"] == lifecycle
    assert json.dumps(followed[-1]["data"]["result"]) == json.dumps(runner.lines[-1]["data"]["result"])
