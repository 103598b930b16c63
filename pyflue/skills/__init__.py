"""Skills (``skills/<name>/SKILL.md``, ``skills/<name>.md``), roles (``roles/<name>.md``) and project
instructions (``AGENTS.md``): what configures agents beyond code. See ``docs/skills.md``."""

from __future__ import annotations

from .activation import (
    SKILL_TOOL,
    SkillArgsError,
    get_skill,
    prepare_skill_prompt,
    resolve_skills,
    schema_type,
    skill_text,
    skill_tool,
)
from .documents import (
    DocumentError,
    ProjectDocuments,
    Role,
    Skill,
    compose_instructions,
    load_documents,
    load_roles,
    load_skills,
    parse_role,
    parse_skill,
    project_instructions,
)
from .frontmatter import FrontmatterError

__all__ = [
    "SKILL_TOOL",
    "DocumentError",
    "FrontmatterError",
    "ProjectDocuments",
    "Role",
    "Skill",
    "SkillArgsError",
    "compose_instructions",
    "get_skill",
    "load_documents",
    "load_roles",
    "load_skills",
    "parse_role",
    "parse_skill",
    "prepare_skill_prompt",
    "project_instructions",
    "resolve_skills",
    "schema_type",
    "skill_text",
    "skill_tool",
]
