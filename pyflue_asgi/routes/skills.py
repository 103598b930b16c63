"""``GET /skills``: the project's skills (``skills/<name>/SKILL.md``, ``skills/<name>.md``) with
their descriptions and the JSON schemas of their arguments and results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..routing import ApiRoute
from ..state import ServerState

__all__ = ["SkillInfo", "SkillList", "routes"]


class SkillInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    args: dict[str, Any] | None
    result: dict[str, Any] | None


class SkillList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skills: list[SkillInfo]


async def list_skills(request: Request, state: ServerState) -> Response:
    skills = state.project.skills
    body = {
        "skills": [
            {
                "name": name,
                "description": skills[name].description,
                "args": _schema(skills[name].args),
                "result": _schema(skills[name].result),
            }
            for name in sorted(skills)
        ]
    }
    return JSONResponse(body)


def _schema(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


routes = [
    ApiRoute(
        "GET",
        "/skills",
        list_skills,
        "listSkills",
        "The project's skills",
        "skills",
        answers={200: SkillList},
    ),
]
