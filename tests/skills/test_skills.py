"""Skills, roles and AGENTS.md loaded from a real project directory; the activate_skill tool in a
scripted conversation; skill prompts with checked arguments and a typed result."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pyflue import init
from pyflue.errors import ConfigError, OutputValidationError, ToolError
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage
from pyflue.models.testing import FunctionModel
from pyflue.skills import (
    SKILL_TOOL,
    FrontmatterError,
    Role,
    Skill,
    SkillArgsError,
    compose_instructions,
    load_documents,
    load_roles,
    load_skills,
    prepare_skill_prompt,
    project_instructions,
    resolve_skills,
    skill_tool,
)

REVIEW = """---
name: review
description: Review a diff for bugs and risky changes.
args: {"type": "object", "properties": {"diff": {"type": "string"}, "strict": {"type": "boolean"}},
       "required": ["diff"], "additionalProperties": false}
result: {"type": "object", "properties": {"verdict": {"enum": ["ok", "risky"]}, "notes": {"type": "array",
         "items": {"type": "string"}}}, "required": ["verdict"]}
---
Read the diff line by line. Use checklist.md.
"""

SUMMARIZE = """---
description: Summarise a text in three bullet points.
---
Write exactly three bullets.
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        {
            "skills/review/SKILL.md": REVIEW,
            "skills/review/checklist.md": "- nulls\n",
            "skills/review/scripts/lint.py": "print('lint')\n",
            "skills/review/.hidden": "x",
            "skills/summarize.md": SUMMARIZE,
            "skills/README.md": "not a skill",
            "skills/_draft.md": "not loaded",
        },
    )


# -- loading ---------------------------------------------------------------------------------------


def test_folders_and_files_are_skills(project: Path) -> None:
    skills, errors = load_skills(project)
    assert errors == []
    assert sorted(skills) == ["review", "summarize"]
    review, summarize = skills["review"], skills["summarize"]
    assert review.description == "Review a diff for bugs and risky changes."
    assert review.instructions == "Read the diff line by line. Use checklist.md."
    assert review.args is not None and review.args["required"] == ["diff"]
    assert review.result is not None and review.result["required"] == ["verdict"]
    assert review.location == "skills/review"
    assert review.files == ("checklist.md", "scripts/lint.py")
    assert review.path == project / "skills/review/SKILL.md"
    assert summarize.name == "summarize" and summarize.files == () and summarize.location is None
    assert summarize.args is None and summarize.result is None


def test_each_bad_file_is_reported_with_its_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "skills/good.md": SUMMARIZE,
            "skills/nodesc.md": "---\nname: nodesc\n---\nbody\n",
            "skills/badline.md": "---\ndescription: d\nthis is not a pair\n---\nbody\n",
            "skills/badargs.md": '---\ndescription: d\nargs: {"type": "string"}\n---\nbody\n',
            "skills/renamed.md": "---\nname: other\ndescription: d\n---\nbody\n",
            "skills/unknown.md": "---\ndescription: d\nmodel: x\n---\nbody\n",
            "skills/empty.md": "---\ndescription: d\n---\n",
            "skills/Upper.md": SUMMARIZE,
            "skills/nofile/notes.md": "x",
            "skills/twice.md": SUMMARIZE,
            "skills/twice/SKILL.md": SUMMARIZE,
        },
    )
    skills, errors = load_skills(tmp_path)
    assert sorted(skills) == ["good", "twice"]
    found = {(e.name, e.line): e.message for e in errors}
    assert set(found) == {
        ("nodesc", None),
        ("badline", 3),
        ("badargs", 3),
        ("renamed", 2),
        ("unknown", 3),
        ("empty", None),
        ("Upper", None),
        ("nofile", None),
        ("twice", None),
    }
    assert "needs a 'description" in found[("nodesc", None)]
    assert "expected 'key: value'" in found[("badline", 3)]
    assert "object schema" in found[("badargs", 3)]
    assert "does not match the file's name" in found[("renamed", 2)]
    assert "unknown key 'model'" in found[("unknown", 3)]
    assert "no instructions" in found[("empty", None)]
    assert "has no SKILL.md" in found[("nofile", None)]
    assert "also in" in found[("twice", None)]
    twice = next(e for e in errors if e.name == "twice")
    assert twice.path == tmp_path / "skills/twice.md"  # the folder came first and stays
    assert skills["twice"].path == tmp_path / "skills/twice/SKILL.md"
    bad = next(e for e in errors if e.name == "badline")
    assert str(bad) == f"{tmp_path / 'skills/badline.md'}:3: {bad.message}"


def test_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "skills").mkdir()
    (tmp_path / "skills/bin.md").write_bytes(b"---\ndescription: \xff\n---\nx")
    _, errors = load_skills(tmp_path)
    assert [(e.name, "not UTF-8" in e.message) for e in errors] == [("bin", True)]


def test_no_skills_folder_means_no_skills(tmp_path: Path) -> None:
    assert load_skills(tmp_path) == ({}, [])
    assert load_roles(tmp_path) == ({}, [])


def test_config_entries_resolve_by_name_path_or_object(project: Path, tmp_path: Path) -> None:
    skills, _ = load_skills(project)
    write(tmp_path / "elsewhere", {"extra.md": SUMMARIZE.replace("three", "five")})
    own = Skill("own", "mine", "do it", Path("own.md"))
    found = resolve_skills(["review", "elsewhere/extra.md", own], skills, base=project)
    assert list(found) == ["review", "extra", "own"]
    assert "five bullets" in found["extra"].instructions
    with pytest.raises(ConfigError, match='no skill named "nope"; available skills: review, summarize'):
        resolve_skills(["nope"], skills)
    with pytest.raises(ConfigError, match="two skills are named 'summarize'"):
        resolve_skills(["summarize", Skill("summarize", "d", "i", Path("x.md"))], skills)
    with pytest.raises(ConfigError, match="must be a list"):
        resolve_skills("review", skills)  # type: ignore[arg-type]
    with pytest.raises(FrontmatterError, match="must start with a '---'"):
        resolve_skills([str(project / "skills/README.md")], skills)


# -- the activate_skill tool -----------------------------------------------------------------------


async def test_tool_lists_skills_and_returns_the_body(project: Path) -> None:
    skills, _ = load_skills(project)
    tool = skill_tool(skills)
    assert tool.name == SKILL_TOOL
    assert "- review: Review a diff for bugs and risky changes." in tool.description
    assert "- summarize: Summarise a text in three bullet points." in tool.description
    assert "Read the diff" not in tool.description  # bodies cost nothing until used
    assert tool.parameters["properties"]["name"]["enum"] == ["review", "summarize"]
    text = await tool.call({"name": "review"})
    assert "Read the diff line by line. Use checklist.md." in text
    assert "- skills/review/checklist.md" in text and "- skills/review/scripts/lint.py" in text
    unknown = 'no skill named "../etc/passwd"; available skills: review, summarize'
    with pytest.raises(ToolError, match=re.escape(unknown)):
        await tool.call({"name": "../etc/passwd"})
    with pytest.raises(ConfigError, match="at least one skill"):
        skill_tool({})


def _call(name: str, args: dict[str, Any]) -> ModelResponse:
    return ModelResponse([ToolCallPart("c1", name, args)], Usage(requests=1), "tool_calls")


async def test_model_activates_a_skill_and_its_body_reaches_the_next_request(project: Path) -> None:
    skills, _ = load_skills(project)
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> ModelResponse | str:
        seen.append(request)
        if len(seen) == 1:
            return _call(SKILL_TOOL, {"name": "summarize"})
        return "- one\n- two\n- three"

    harness = await init(model=FunctionModel(respond), tools=[skill_tool(skills)])
    res = await (await harness.session()).prompt("summarise this")
    assert res.text == "- one\n- two\n- three"
    assert all("Write exactly three bullets." not in json.dumps(d.description) for d in seen[0].tools)
    last = seen[1].messages[-1]
    assert isinstance(last, UserMessage)
    results = [p for p in last.parts if isinstance(p, ToolResultPart)]
    assert len(results) == 1 and not results[0].is_error
    assert "Write exactly three bullets." in results[0].content


# -- running a skill as a prompt -------------------------------------------------------------------


def test_prepare_checks_args_against_the_schema(project: Path) -> None:
    review = load_skills(project)[0]["review"]
    text, result_type = prepare_skill_prompt(review, {"diff": "- a\n+ b", "strict": True})
    assert "Read the diff line by line." in text
    assert json.dumps({"diff": "- a\n+ b", "strict": True}, indent=2) in text
    assert result_type is not None
    with pytest.raises(SkillArgsError) as info:
        prepare_skill_prompt(review, {"diff": 3})
    assert isinstance(info.value, ConfigError)
    assert info.value.skill == "review" and info.value.field == "args.diff"
    assert str(info.value) == (
        f"skill 'review' ({project / 'skills/review/SKILL.md'}:4): args.diff: must be string, got integer"
    )
    with pytest.raises(SkillArgsError, match=r"args.diff: is required"):
        prepare_skill_prompt(review)
    with pytest.raises(SkillArgsError, match=r"args.extra: is not expected"):
        prepare_skill_prompt(review, {"diff": "", "extra": 1})


def test_prepare_without_schemas(project: Path) -> None:
    summarize = load_skills(project)[0]["summarize"]
    text, result_type = prepare_skill_prompt(summarize, {"text": "long"})
    assert result_type is None and '"text": "long"' in text
    text, result_type = prepare_skill_prompt(summarize, result=int)
    assert result_type is int and "Arguments" not in text
    with pytest.raises(SkillArgsError, match="must be JSON values"):
        prepare_skill_prompt(summarize, {"when": object()})


class Verdict(BaseModel):
    verdict: str


async def test_a_skill_runs_as_a_typed_prompt(project: Path) -> None:
    review = load_skills(project)[0]["review"]
    seen: list[ModelRequest] = []
    answers = iter(['{"verdict": "maybe"}', '{"verdict": "risky", "notes": ["null check"]}'])

    def respond(request: ModelRequest) -> str:
        seen.append(request)
        return next(answers)

    harness = await init(model=FunctionModel(respond))
    session = await harness.session()
    text, result_type = prepare_skill_prompt(review, {"diff": "+ x = None"})
    res = await session.prompt(text, result=result_type)
    assert res.output == {"verdict": "risky", "notes": ["null check"]}
    assert '"enum":["ok","risky"]' in (seen[0].instructions or "").replace(" ", "")  # the skill's schema
    assert "must be one of" in json.dumps([m.parts for m in seen[1].messages], default=str)  # the repair

    # A result type given by the caller wins over the skill's schema.
    text, result_type = prepare_skill_prompt(review, {"diff": "+ x"}, result=Verdict)
    answers = iter(['{"verdict": "anything"}'])
    res = await session.prompt(text, result=result_type)
    assert res.output == Verdict(verdict="anything")

    answers = iter(['{"verdict": "no"}'] * 5)
    text, result_type = prepare_skill_prompt(review, {"diff": "+ y"})
    with pytest.raises(OutputValidationError):
        await session.prompt(text, result=result_type)


# -- roles and AGENTS.md ---------------------------------------------------------------------------


def test_roles(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "roles/reviewer.md": "---\ndescription: Reviews code.\n---\nYou review code strictly.\n",
            "roles/plain.md": "You write plainly.\n",
            "roles/broken.md": "---\ndescription: x\n  more\n---\nbody\n",
            "roles/empty.md": "---\ndescription: x\n---\n",
        },
    )
    roles, errors = load_roles(tmp_path)
    assert sorted(roles) == ["plain", "reviewer"]
    assert roles["reviewer"] == Role(
        "reviewer", "You review code strictly.", tmp_path / "roles/reviewer.md", "Reviews code."
    )
    assert roles["plain"].instructions == "You write plainly." and roles["plain"].description == ""
    found = sorted((e.kind, e.name, e.line) for e in errors)
    assert found == [("role", "broken", 3), ("role", "empty", None)]


def test_agents_md_and_composition(tmp_path: Path) -> None:
    assert project_instructions(tmp_path) is None
    (tmp_path / "AGENTS.md").write_text("  \n", encoding="utf-8")
    assert project_instructions(tmp_path) is None
    (tmp_path / "AGENTS.md").write_text("# Project\nUse British spelling.\n", encoding="utf-8")
    shared = project_instructions(tmp_path)
    assert shared == "# Project\nUse British spelling."
    role = Role("reviewer", "Review strictly.", tmp_path / "roles/reviewer.md")
    assert compose_instructions("You are helpful.", project=shared, role=role) == (
        "# Project\nUse British spelling.\n\nYou are helpful.\n\nReview strictly."
    )
    assert compose_instructions(None, project=shared) == shared
    assert compose_instructions("  ", role="Only the role.") == "Only the role."
    assert compose_instructions(None) is None
    (tmp_path / "AGENTS.md").write_bytes(b"\xff\xfe")
    with pytest.raises(FrontmatterError, match=r"AGENTS\.md: is not UTF-8"):
        project_instructions(tmp_path)


async def test_agents_md_reaches_the_model(tmp_path: Path) -> None:
    write(tmp_path, {"AGENTS.md": "Always answer in French.", "roles/terse.md": "Be terse."})
    roles, _ = load_roles(tmp_path)
    seen: list[ModelRequest] = []

    def respond(request: ModelRequest) -> str:
        seen.append(request)
        return "oui"

    instructions = compose_instructions(
        "You are a helper.", project=project_instructions(tmp_path), role=roles["terse"]
    )
    harness = await init(model=FunctionModel(respond), instructions=instructions)
    await (await harness.session()).prompt("hello")
    assert seen[0].instructions == "Always answer in French.\n\nYou are a helper.\n\nBe terse."


def test_one_call_loads_a_projects_documents(project: Path) -> None:
    write(project, {"AGENTS.md": "Be kind.", "roles/editor.md": "Edit.", "roles/bad.md": "---\nx\n---\ny"})
    docs = load_documents(project)
    assert sorted(docs.skills) == ["review", "summarize"] and sorted(docs.roles) == ["editor"]
    assert docs.instructions == "Be kind."
    assert [(e.kind, e.name, e.line) for e in docs.errors] == [("role", "bad", 2)]
    (project / "AGENTS.md").write_bytes(b"\xff")
    docs = load_documents(project)
    assert docs.instructions is None
    assert [(e.kind, e.name, e.path) for e in docs.errors][-1] == (
        "instructions",
        "AGENTS.md",
        project / "AGENTS.md",
    )
