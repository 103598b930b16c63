"""``pyflue prompt`` (conversations that persist) and ``pyflue agents`` / ``pyflue workflows``."""

from __future__ import annotations

from pathlib import Path

from .conftest import Child, assert_one_line_error, child_env, cli, interrupt


def test_prompt_prints_the_answer(created: Path) -> None:
    result = cli("prompt", "assistant", "case-1", "How many words are in this?", cwd=created)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.strip().startswith("[test model] called ")  # the offline model says so


def test_prompt_continues_the_conversation_across_invocations(created: Path) -> None:
    def ask(text: str, session: str) -> dict:
        result = cli("prompt", "assistant", "case-42", text, "--session", session, "--json", cwd=created)
        assert result.code == 0, result.err
        return result.json()

    first = ask("Where is my order?", "billing")
    second = ask("And the invoice?", "billing")
    other = ask("Where is my order?", "shipping")
    assert first["session_id"] == "billing" and first["instance_id"] == "case-42"
    # The second prompt's request carried the first exchange (the test model counts input words).
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    assert other["usage"]["input_tokens"] == first["usage"]["input_tokens"]  # a fresh session


def test_prompt_from_stdin_and_jsonl(created: Path) -> None:
    result = cli("prompt", "assistant", "case-2", "-", "--jsonl", cwd=created, input="Count these words")
    assert result.code == 0, result.err
    events = result.jsonl()
    assert events[0]["type"] == "operation_start" and events[0]["data"]["input"] == "Count these words"
    assert events[-1]["type"] == "operation_end" and events[-1]["data"]["status"] == "completed"


def test_prompt_unknown_agent_and_empty_message_exit_2(created: Path) -> None:
    assert_one_line_error(
        cli("prompt", "nobody", "x", "hi", cwd=created), 2, "no agent named 'nobody'", "assistant"
    )
    assert_one_line_error(cli("prompt", "assistant", "x", "  ", cwd=created), 2, "empty")


def test_listings(created: Path) -> None:
    agents = cli("agents", cwd=created)
    assert agents.code == 0 and agents.err == ""
    assert agents.out.startswith("assistant\tA support assistant with one tool")
    workflows = cli("workflows", "--json", cwd=created).json()
    assert [w["name"] for w in workflows["workflows"]] == ["summarize"] and workflows["errors"] == []


def test_listings_report_import_errors_without_hiding_the_rest(broken: Path) -> None:
    result = cli("agents", cwd=broken)
    assert result.code == 1
    assert result.out == "fine\tAn agent that imports.\n"
    assert_one_line_error(result, 1, "broken", "broken.py:3", "ModuleNotFoundError")
    data = cli("agents", "--json", cwd=broken).json()
    assert [a["name"] for a in data["agents"]] == ["fine"] and data["errors"][0]["name"] == "broken"
    assert cli("workflows", cwd=broken).code == 0  # the broken file is an agent, not a workflow
    assert_one_line_error(cli("prompt", "broken", "x", "hi", cwd=broken), 2, "failed to load")
    assert cli("run", "hello", cwd=broken).json() == "hello"  # the rest of the project still runs


def test_ctrl_c_aborts_a_prompt_and_the_session_goes_on(lab: Path, gate: Path) -> None:
    env = child_env(PYFLUE_TEST_GATE=str(gate))
    child = Child("prompt", "gatekeeper", "door-1", "open up", "--jsonl", cwd=lab, env=env)
    try:
        child.read_until(lambda e: e["type"] == "tool_start")
        interrupt(child)
        code, err = child.finish()
    finally:
        child.kill()
    assert code == 130
    assert err == "pyflue: interrupted; the prompt to gatekeeper was aborted\n"
    gate.touch()
    again = cli("prompt", "gatekeeper", "door-1", "open up", "--json", cwd=lab, env=env)
    assert again.code == 0, again.err
