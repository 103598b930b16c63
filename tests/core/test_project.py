"""Project discovery: agents/ and workflows/ (or src/...), broken files reported, modules imported once."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pyflue import AgentDefinition, Project
from pyflue.errors import ConfigError, UnknownAgentError, WorkflowError
from pyflue.project import LoadError
from tests.core._workflow_helpers import (
    SEED,
    write_project,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

AGENT = """\
    '''Answers questions.'''
    from pyflue import create_agent

    default = create_agent(lambda ctx: {"model": "test"})
"""


def test_discovers_agents_and_workflows_with_their_metadata(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "agents/assistant.py": AGENT,
            "workflows/summarize.py": SEED,
            "workflows/typed.py": """\
                '''Greets someone.

                More text.'''
                from pydantic import BaseModel

                timeout = 5

                class Payload(BaseModel):
                    name: str
                    times: int = 1

                async def run(ctx):
                    return {"hello": ctx.payload["name"]}
            """,
            "workflows/_shared.py": "raise RuntimeError('helpers are not workflows')\n",
            "workflows/notes.txt": "not python",
        },
    )
    project = Project.load(tmp_path)

    assert project.path == tmp_path.resolve()
    assert project.errors == {}
    assert sorted(project.workflows) == ["summarize", "typed"]
    assistant = project.agents["assistant"]
    assert isinstance(assistant, AgentDefinition)
    assert assistant.name == "assistant"  # from the file name
    assert assistant.description == "Answers questions."
    typed = project.workflows["typed"]
    assert typed.description == "Greets someone.\n\nMore text."
    assert typed.timeout == 5.0
    assert typed.payload_schema is not None and typed.payload_schema["required"] == ["name"]
    assert project.workflows["summarize"].payload_type is None
    assert project.workflows["summarize"].timeout is None
    assert project.db_path == tmp_path.resolve() / ".pyflue" / "pyflue.db"
    assert not project.db_path.exists()  # stores open lazily


def test_a_broken_module_is_reported_and_the_others_still_load(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "agents/good.py": AGENT,
            "agents/raises.py": "x = 1\nraise RuntimeError('boom at import')\n",
            "agents/nodefault.py": "from pyflue import create_agent\nagent = create_agent(lambda c: {})\n",
            "workflows/fine.py": "async def run(ctx):\n    return 1\n",
            "workflows/syntax.py": "async def run(ctx):\n    return (\n",
            "workflows/missing_import.py": "import pyflue_no_such_module\n",
            "workflows/sync_run.py": "def run(ctx):\n    return 1\n",
            "workflows/bad_timeout.py": "timeout = -1\nasync def run(ctx):\n    return 1\n",
            "workflows/Bad Name.py": "async def run(ctx):\n    return 1\n",
        },
    )
    project = Project.load(tmp_path)

    assert sorted(project.agents) == ["good"]
    assert sorted(project.workflows) == ["fine"]
    assert set(project.errors) == {
        "raises",
        "nodefault",
        "syntax",
        "missing_import",
        "sync_run",
        "bad_timeout",
        "Bad Name",
    }
    raises = project.errors["raises"]
    assert isinstance(raises, LoadError)
    assert (raises.kind, raises.path, raises.line) == ("agent", tmp_path.resolve() / "agents/raises.py", 2)
    assert str(raises) == f"{tmp_path.resolve() / 'agents/raises.py'}:2: RuntimeError: boom at import"
    assert project.errors["syntax"].message.startswith("SyntaxError")
    assert project.errors["syntax"].line is not None
    assert "pyflue_no_such_module" in project.errors["missing_import"].message
    assert "default = create_agent" in project.errors["nodefault"].message
    assert "async def run(ctx)" in project.errors["sync_run"].message
    assert "timeout must be positive" in project.errors["bad_timeout"].message
    assert "must match" in project.errors["Bad Name"].message
    # a failed import leaves nothing half-imported behind
    assert f"{project.package}.agents.raises" not in sys.modules
    with pytest.raises(WorkflowError, match=r"workflow 'syntax' failed to load: .*syntax\.py"):
        project.workflow("syntax")


def test_unknown_names_list_the_available_ones(tmp_path: Path) -> None:
    write_project(tmp_path, {"agents/helper.py": AGENT, "workflows/alpha.py": "async def run(ctx): ...\n"})
    project = Project.load(tmp_path)
    with pytest.raises(UnknownAgentError, match=r"no workflow named 'beta'.*available: alpha"):
        project.workflow("beta")
    with pytest.raises(UnknownAgentError, match=r"available: helper"):
        project.agent("nobody")


def test_src_layout_and_hyphenated_names(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "src/agents/my-agent.py": AGENT,
            "src/workflows/daily-report.py": "async def run(ctx):\n    return {'ok': True}\n",
        },
    )
    project = Project.load(tmp_path)
    assert project.source == tmp_path.resolve() / "src"
    assert project.errors == {}
    assert list(project.agents) == ["my-agent"]
    assert project.agents["my-agent"].name == "my-agent"
    assert list(project.workflows) == ["daily-report"]


def test_modules_load_once_per_project_and_projects_never_clash(tmp_path: Path) -> None:
    one = write_project(
        tmp_path / "one",
        {
            "agents/assistant.py": AGENT,
            "workflows/go.py": """\
                from ..agents.assistant import default  # a relative import of the project's agent
                WHO = "one"
                async def run(ctx):
                    return WHO
            """,
        },
    )
    two = write_project(
        tmp_path / "two", {"workflows/go.py": "WHO = 'two'\nasync def run(ctx):\n    return WHO\n"}
    )

    first = Project.load(one)
    # Loading again (by any spelling of the path) finds the modules imported the first time.
    for again in (Project.load(one), Project.load(str(one / ".." / "one"))):
        assert again.workflows["go"].run is first.workflows["go"].run
        assert again.agents["assistant"] is first.agents["assistant"]
    second = Project.load(two)
    run_one, run_two = first.workflows["go"].run, second.workflows["go"].run
    assert run_one.__globals__["WHO"] == "one" and run_two.__globals__["WHO"] == "two"
    assert run_one.__module__ != run_two.__module__
    # the workflow's relative import and discovery share one module: the agent exists once
    assert run_one.__globals__["default"] is first.agents["assistant"]


def test_reload_imports_the_files_again(tmp_path: Path) -> None:
    write_project(tmp_path, {"workflows/go.py": "VALUE = 1\nasync def run(ctx):\n    return VALUE\n"})
    before = Project.load(tmp_path)
    (tmp_path / "workflows/go.py").write_text("VALUE = 2\nasync def run(ctx):\n    return VALUE\n")
    after = Project.load(tmp_path, reload=True)
    assert after is not before
    assert after.workflows["go"].run.__globals__["VALUE"] == 2
    assert Project.load(tmp_path).workflows["go"].run is after.workflows["go"].run


def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Project.load(tmp_path / "nope")


async def test_load_async_imports_in_a_worker_thread(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {"workflows/where.py": "import threading\nTHREAD = threading.get_ident()\nasync def run(ctx): ...\n"},
    )
    import threading

    project = await Project.load_async(tmp_path)
    assert project.workflows["where"].run.__globals__["THREAD"] != threading.get_ident()
    assert (await Project.load_async(tmp_path)).workflows["where"].run is project.workflows["where"].run


async def test_the_quickstart_example_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFLUE_MODEL", "test")
    copy = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".pyflue", "__pycache__"))
    project = Project.load(copy)
    assert project.errors == {}
    assert sorted(project.agents) == ["assistant"] and sorted(project.workflows) == ["summarize"]
    assert "count_words" in [t.name for t in (await _tools_of(project))]

    record = await project.run("summarize", {"text": "PyFlue runs agents and workflows."})
    assert record.status == "completed", record.error
    # TestModel calls every tool once: the assistant's count_words and its built-in task tool.
    assert record.result["summary"].startswith(
        "[test model] called count_words, task; no real model was used."
    )
    assert "count_words: 1" in record.result["summary"]
    assert record.result["review"].startswith("[test model] called count_words;")
    assert record.usage.requests == 6


async def _tools_of(project: Project) -> list[object]:
    from pyflue import init

    harness = await init(project.agents["assistant"], id="probe")
    return list(harness.tools.values())


def test_an_agent_and_a_workflow_of_one_name_both_failing_are_both_reported(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {"agents/twin.py": "raise ValueError('a')\n", "workflows/twin.py": "raise ValueError('w')\n"},
    )
    errors = Project.load(tmp_path).errors
    assert {key: (e.kind, e.message) for key, e in errors.items()} == {
        "twin": ("agent", "ValueError: a"),
        "workflow:twin": ("workflow", "ValueError: w"),
    }
