"""Skills, roles and project instructions: markdown files in a project, loaded at start-up.

::

    my-project/
      AGENTS.md                    instructions added to every agent of the project
      skills/review/SKILL.md       a folder skill (its other files are listed for the model)
      skills/review/checklist.md
      skills/summarize.md          a single-file skill
      roles/reviewer.md            a role: instructions layered on an agent's own

Loading reads files, which blocks: these functions are meant for project load time (which already
runs in a worker thread under ``Project.load_async``); from async code call them through
``anyio.to_thread.run_sync``. Problems are reported per file as :class:`DocumentError` records
(one bad file never hides the others), in the same shape as a project's load errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .frontmatter import Document, FrontmatterError, parse_document
from .schema import check_schema

__all__ = [
    "DocumentError",
    "LoadError",
    "ProjectDocuments",
    "Role",
    "Skill",
    "compose_instructions",
    "load_documents",
    "load_roles",
    "load_skills",
    "parse_role",
    "parse_skill",
    "project_instructions",
]

SKILL_FILE = "SKILL.md"
INSTRUCTIONS_FILE = "AGENTS.md"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SKILL_KEYS = ("name", "description", "args", "result", "license", "allowed-tools", "metadata")
_ROLE_KEYS = ("name", "description")
#: How many of a folder skill's files are listed for the model.
MAX_LISTED_FILES = 100


@dataclass(frozen=True, slots=True)
class LoadError:
    """Why one file of a project (an agent, workflow, skill, role or ``AGENTS.md``) could not be
    loaded; the loaders here report the last three, ``Project`` all five. ``str()`` reads
    ``<path>:<line>: <why>``."""

    kind: Literal["agent", "workflow", "skill", "role", "instructions"]
    name: str
    path: Path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


#: The name the skill and role loaders' records are documented under.
DocumentError = LoadError


@dataclass(frozen=True, slots=True, eq=False)
class Skill:
    """A skill: what it is for (``description``, which the model sees up front), and how to do it
    (``instructions``, the body, which enters a conversation only when the skill is used).

    ``args`` / ``result`` are optional JSON schemas for ``session.skill(name, args=...)``.
    ``directory`` is a folder skill's folder and ``files`` the other files in it (relative, POSIX
    separators), which the instructions may refer to; ``location`` is where the model can read them
    (the folder relative to the project, e.g. ``skills/review``). ``metadata`` keeps the keys other
    skill formats use (``license``, ``allowed-tools``, ``metadata``); PyFlue does not act on them.
    """

    name: str
    description: str
    instructions: str
    path: Path
    args: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None
    directory: Path | None = None
    location: str | None = None
    files: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: The frontmatter lines of ``args`` and ``result``, for error messages.
    lines: Mapping[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Skill({self.name!r})"


@dataclass(frozen=True, slots=True)
class Role:
    """A role: ``instructions`` layered on top of an agent's own (see :func:`compose_instructions`)."""

    name: str
    instructions: str
    path: Path
    description: str = ""

    def __repr__(self) -> str:
        return f"Role({self.name!r})"


# -- skills ----------------------------------------------------------------------------------------


def parse_skill(path: str | Path, *, root: str | Path | None = None) -> Skill:
    """The skill in ``path``: a ``SKILL.md`` file (or its folder), or a single ``<name>.md`` file.

    The skill's name is its folder's (``SKILL.md``) or its file's stem; a ``name`` in the
    frontmatter must agree. ``root`` (the project directory) makes ``location`` relative to it.
    Raises :class:`~pyflue.skills.frontmatter.FrontmatterError` (a ``ConfigError``) naming the
    file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SKILL_FILE
    folder = path.name == SKILL_FILE
    name = path.parent.name if folder else path.stem
    doc = _read(path)
    _check_keys(doc, _SKILL_KEYS)
    _check_name(doc, name)
    description = doc.meta.get("description")
    if not isinstance(description, str) or not description.strip():
        raise doc.error("description", "a skill needs a 'description: ...' saying when to use it")
    schemas: dict[str, Mapping[str, Any] | None] = {}
    for key in ("args", "result"):
        schema = doc.meta.get(key)
        if schema is not None:
            try:
                check_schema(schema)
            except ValueError as exc:
                raise doc.error(key, f"{key}: {exc}") from None
            if key == "args" and schema.get("type", "object") != "object":
                raise doc.error(key, "args must be an object schema ('type': 'object')")
        schemas[key] = schema
    if not doc.body:
        raise doc.error(None, "the skill has no instructions: write them below the frontmatter")
    directory = path.parent if folder else None
    return Skill(
        name=name,
        description=description.strip(),
        instructions=doc.body,
        path=path,
        args=schemas["args"],
        result=schemas["result"],
        directory=directory,
        location=_location(directory, root) if directory is not None else None,
        files=_files(directory) if directory is not None else (),
        metadata={k: v for k, v in doc.meta.items() if k not in ("name", "description", "args", "result")},
        lines={k: v for k, v in doc.lines.items() if k in ("args", "result")},
    )


def load_skills(project_dir: str | Path) -> tuple[dict[str, Skill], list[DocumentError]]:
    """The skills in ``<project_dir>/skills``: ``<name>/SKILL.md`` folders and ``<name>.md`` files
    (``README.md`` and names starting with ``_`` or ``.`` are skipped). Returns the skills by name
    and the files that failed (bad frontmatter, no description, a bad name, a duplicate)."""
    root = Path(project_dir)
    folder = root / "skills"
    skills: dict[str, Skill] = {}
    errors: list[DocumentError] = []
    for entry in _entries(folder):
        name = entry.name if entry.is_dir() else entry.stem
        file = entry / SKILL_FILE if entry.is_dir() else entry
        if not _NAME.match(name):
            errors.append(DocumentError("skill", name, file, _bad_name("skill", name)))
            continue
        if entry.is_dir() and not file.is_file():
            errors.append(DocumentError("skill", name, entry, f"the skill folder has no {SKILL_FILE}"))
            continue
        if name in skills:
            first = skills[name].path
            errors.append(DocumentError("skill", name, file, f"a skill named {name!r} is also in {first}"))
            continue
        try:
            skills[name] = parse_skill(file, root=root)
        except FrontmatterError as exc:
            errors.append(DocumentError("skill", name, exc.path, exc.problem, exc.line))
    return skills, errors


# -- roles -----------------------------------------------------------------------------------------


def parse_role(path: str | Path) -> Role:
    """The role in ``roles/<name>.md``: optional frontmatter (``name``, ``description``) and the
    instructions as the body. Raises ``FrontmatterError`` naming the file and line."""
    path = Path(path)
    doc = _read(path, require_frontmatter=False)
    _check_keys(doc, _ROLE_KEYS)
    _check_name(doc, path.stem)
    description = doc.meta.get("description", "")
    if not isinstance(description, str):
        raise doc.error("description", "description must be text")
    if not doc.body:
        raise doc.error(None, "the role has no instructions: write them below the frontmatter")
    return Role(path.stem, doc.body, path, description.strip())


def load_roles(project_dir: str | Path) -> tuple[dict[str, Role], list[DocumentError]]:
    """The roles in ``<project_dir>/roles/*.md``, and the files that failed."""
    roles: dict[str, Role] = {}
    errors: list[DocumentError] = []
    for entry in _entries(Path(project_dir) / "roles"):
        if entry.is_dir():
            continue
        name = entry.stem
        if not _NAME.match(name):
            errors.append(DocumentError("role", name, entry, _bad_name("role", name)))
            continue
        try:
            roles[name] = parse_role(entry)
        except FrontmatterError as exc:
            errors.append(DocumentError("role", name, exc.path, exc.problem, exc.line))
    return roles, errors


# -- project instructions --------------------------------------------------------------------------


def project_instructions(project_dir: str | Path) -> str | None:
    """The text of ``AGENTS.md`` at the project root, or ``None`` when there is none (or it is
    blank). Raises ``FrontmatterError`` (a ``ConfigError``) when it cannot be read as UTF-8."""
    path = Path(project_dir) / INSTRUCTIONS_FILE
    if not path.is_file():
        return None
    return _text(path).strip() or None


def compose_instructions(
    instructions: str | None, *, project: str | None = None, role: Role | str | None = None
) -> str | None:
    """An agent's instructions with the project's (``AGENTS.md``) before them and a role's after
    them: the project says where the agent works, the agent says what it is, the role what it does
    now, so the most specific text comes last. Blank parts are left out; ``None`` when all are."""
    role_text = role.instructions if isinstance(role, Role) else role
    parts = [p.strip() for p in (project, instructions, role_text) if p and p.strip()]
    return "\n\n".join(parts) or None


@dataclass(frozen=True, slots=True)
class ProjectDocuments:
    """Everything of a project that is markdown: its skills, roles, ``AGENTS.md`` text, and the
    files that failed to load."""

    skills: dict[str, Skill]
    roles: dict[str, Role]
    instructions: str | None
    errors: list[DocumentError]


def load_documents(project_dir: str | Path) -> ProjectDocuments:
    """:func:`load_skills`, :func:`load_roles` and :func:`project_instructions` of one project in one
    call, for project discovery (blocking file IO, like them); an unreadable ``AGENTS.md`` is one
    more error record, not an exception."""
    skills, errors = load_skills(project_dir)
    roles, role_errors = load_roles(project_dir)
    errors.extend(role_errors)
    try:
        instructions = project_instructions(project_dir)
    except FrontmatterError as exc:
        instructions = None
        errors.append(DocumentError("instructions", INSTRUCTIONS_FILE, exc.path, exc.problem, exc.line))
    return ProjectDocuments(skills, roles, instructions, errors)


# -- helpers ---------------------------------------------------------------------------------------


def _entries(folder: Path) -> Iterable[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(("_", "."))
        and entry.name.lower() != "readme.md"
        and (entry.is_dir() or entry.suffix == ".md")
    )


def _read(path: Path, *, require_frontmatter: bool = True) -> Document:
    return parse_document(_text(path), path, require_frontmatter=require_frontmatter)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FrontmatterError(path, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise FrontmatterError(path, None, f"cannot be read: {exc.strerror or exc}") from None


def _check_keys(doc: Document, known: tuple[str, ...]) -> None:
    for key in doc.meta:
        if key not in known:
            raise doc.error(key, f"unknown key {key!r}; known keys: {', '.join(known)}")


def _check_name(doc: Document, name: str) -> None:
    given = doc.meta.get("name")
    if given is not None and given != name:
        raise doc.error("name", f"name {given!r} does not match the file's name {name!r}; make them agree")


def _bad_name(kind: str, name: str) -> str:
    return f"{kind} name {name!r} must be 1-64 of a-z, 0-9, '-' or '_', starting with a letter or digit"


def _location(directory: Path, root: str | Path | None) -> str:
    if root is not None:
        try:
            return directory.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return directory.as_posix()


def _files(directory: Path) -> tuple[str, ...]:
    """The folder's other files (hidden ones and caches left out), relative to it, at most
    :data:`MAX_LISTED_FILES` of them."""
    found: list[str] = []
    for file in sorted(directory.rglob("*")):
        relative = file.relative_to(directory)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if file.is_file() and relative.as_posix() != SKILL_FILE:
            found.append(relative.as_posix())
            if len(found) == MAX_LISTED_FILES:
                break
    return tuple(found)
