"""Using skills: the ``activate_skill`` tool the model loads skills with, and the prompt that runs a
skill as an operation (``session.skill(name, args=..., result=...)``).

A skill costs no context until used: the model sees only each skill's name and description (in the
tool's description) and loads the instructions by calling ``activate_skill``. Code runs a skill
directly with :func:`prepare_skill_prompt`, which checks the arguments against the skill's ``args``
schema and gives the prompt text and the result type for a typed prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from ..errors import ConfigError, ToolError
from ..tools import Tool, define_tool
from .documents import Skill, parse_skill
from .schema import first_problem

__all__ = [
    "SKILL_TOOL",
    "SkillArgsError",
    "get_skill",
    "prepare_skill_prompt",
    "resolve_skills",
    "schema_type",
    "skill_text",
    "skill_tool",
]

#: The name of the tool the model loads skills with.
SKILL_TOOL = "activate_skill"
_DESCRIPTION_CHARS = 500


class SkillArgsError(ConfigError):
    """The arguments given to a skill do not match its ``args`` schema; the message names the skill,
    its file and line, and the failing field. ``skill`` and ``field`` say the same as data."""

    def __init__(self, message: str, *, skill: str, field: str | None) -> None:
        super().__init__(message)
        self.skill = skill
        self.field = field


def skill_text(skill: Skill) -> str:
    """The skill's instructions as the model reads them, with the files of its folder listed."""
    text = f'<skill name="{skill.name}">\n{skill.instructions}\n</skill>'
    if skill.files:
        where = skill.location or skill.name
        listed = "\n".join(f"- {where}/{file}" for file in skill.files)
        text += f"\n\nFiles of this skill (read them when the instructions refer to them):\n{listed}"
    return text


def skill_tool(skills: Mapping[str, Skill] | Iterable[Skill]) -> Tool:
    """The ``activate_skill`` tool: its description lists each skill's name and description, and a
    call returns that skill's :func:`skill_text`. ``ConfigError`` when there are no skills."""
    table = _table(skills)
    if not table:
        raise ConfigError("skill_tool() needs at least one skill")
    names = list(table)
    lines = "\n".join(f"- {s.name}: {_cut(s.description)}" for s in table.values())
    description = (
        "Load the instructions of a skill. Before working on a task that one of these skills covers, "
        f"call this with its name and follow what it returns.\nSkills:\n{lines}"
    )
    parameters = {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": names, "description": "the skill's name"}},
        "required": ["name"],
        "additionalProperties": False,
    }

    async def activate_skill(name: str) -> str:
        return skill_text(get_skill(table, name, error=ToolError))

    return define_tool(SKILL_TOOL, activate_skill, description=description, parameters=parameters)


def get_skill(skills: Mapping[str, Skill], name: str, *, error: type[Exception] = ConfigError) -> Skill:
    """The skill ``name``, or ``error`` (``ConfigError`` by default) listing the available ones."""
    skill = skills.get(name) if isinstance(name, str) else None
    if skill is None:
        available = ", ".join(sorted(skills)) or "none"
        raise error(f"no skill named {json.dumps(name)[:80]}; available skills: {available}")
    return skill


def resolve_skills(
    entries: Iterable[Skill | str | Path], available: Mapping[str, Skill], *, base: str | Path | None = None
) -> dict[str, Skill]:
    """A config's ``skills=[...]`` as skills by name. An entry is a :class:`Skill`, the name of one of
    ``available`` (the project's), or a path (``Path``, or a string with ``/`` or ending in
    ``.md``) to a skill file or folder, relative to ``base``. Unknown names and two skills of the
    same name are a ``ConfigError``; a bad file is its ``FrontmatterError``. Paths are read from disk:
    call at configuration time (in a worker thread from async code)."""
    if isinstance(entries, str | Path | Skill):
        raise ConfigError("skills must be a list of skill names, paths or Skill objects")
    found: dict[str, Skill] = {}
    for entry in entries:
        if isinstance(entry, Skill):
            skill = entry
        elif isinstance(entry, Path) or (isinstance(entry, str) and ("/" in entry or entry.endswith(".md"))):
            path = Path(entry)
            skill = parse_skill(path if base is None or path.is_absolute() else Path(base) / path, root=base)
        elif isinstance(entry, str):
            skill = get_skill(available, entry)
        else:
            raise ConfigError(f"skills entries are names, paths or Skill objects, got {type(entry).__name__}")
        if skill.name in found and found[skill.name] is not skill:
            first = found[skill.name].path
            raise ConfigError(f"two skills are named {skill.name!r} ({first} and {skill.path})")
        found[skill.name] = skill
    return found


def prepare_skill_prompt(skill: Skill, args: Any = None, result: Any = None) -> tuple[str, Any]:
    """The prompt that runs ``skill`` with ``args``, and the result type of that prompt.

    ``args`` are checked against the skill's ``args`` schema (:class:`SkillArgsError` naming the
    skill, its file and line, and the failing field) and added to the prompt as JSON. The result
    type is ``result`` when given (any type ``session.prompt(result=...)`` takes), else a type made
    from the skill's ``result`` schema (:func:`schema_type`), else ``None`` (a text answer).
    """
    if skill.args is not None:
        value = {} if args is None else args
        problem = first_problem(value, skill.args, "args")
        if problem is not None:
            line = skill.lines.get("args")
            where = f"{skill.path}:{line}" if line else str(skill.path)
            field = problem.split(":", 1)[0]
            raise SkillArgsError(f"skill {skill.name!r} ({where}): {problem}", skill=skill.name, field=field)
    try:
        encoded = None if args is None else json.dumps(args, ensure_ascii=False, indent=2)
    except (TypeError, ValueError) as exc:
        raise SkillArgsError(
            f"skill {skill.name!r}: args must be JSON values (dicts, lists, str, numbers, bool, None): {exc}",
            skill=skill.name,
            field="args",
        ) from None
    text = f"Use the skill {skill.name!r} ({skill.description}).\n\n{skill_text(skill)}"
    if encoded is not None:
        text += f"\n\nArguments:\n{encoded}"
    if result is None and skill.result is not None:
        result = schema_type(skill.result, f"skill {skill.name!r} result")
    return text, result


def schema_type(schema: Mapping[str, Any], what: str = "result") -> Any:
    """A type for ``session.prompt(result=...)`` from a JSON schema: the model is shown ``schema``
    and its answer (plain JSON values) is checked against it."""
    frozen = json.loads(json.dumps(schema))

    def check(value: Any) -> Any:
        problem = first_problem(value, frozen, what)
        if problem is not None:
            raise ValueError(problem)
        return value

    return Annotated[Any, WithJsonSchema(frozen), AfterValidator(check)]


def _table(skills: Mapping[str, Skill] | Iterable[Skill]) -> dict[str, Skill]:
    if isinstance(skills, Mapping):
        return dict(skills)
    table: dict[str, Skill] = {}
    for skill in skills:
        if skill.name in table:
            raise ConfigError(f"two skills are named {skill.name!r}")
        table[skill.name] = skill
    return table


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DESCRIPTION_CHARS else text[: _DESCRIPTION_CHARS - 3] + "..."
