"""Agent profiles: reusable named configurations, used as subagents or as an agent's base."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["AgentProfile", "define_agent_profile", "extend_agent_profile"]


class AgentProfile(BaseModel):
    """A named configuration. As a subagent, its instructions, tools and subagents are its own;
    model, model settings and compaction default to the parent's."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    name: str
    description: str = ""
    instructions: str | None = None
    model: Any = None
    tools: tuple[Any, ...] = ()
    subagents: tuple[Any, ...] = ()
    model_settings: dict[str, Any] | None = None
    compaction: Any = None
    max_turns: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("must be letters, digits, '-' or '_'")
        return value


def define_agent_profile(profile: Mapping[str, Any] | None = None, /, **fields: Any) -> AgentProfile:
    """A profile from a dict or keywords; ``ConfigError`` names a missing or wrong field."""
    data = {**(profile or {}), **fields}
    try:
        return AgentProfile.model_validate(_normalise(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid agent profile {data.get('name')!r}: {_first(exc)}") from None


def extend_agent_profile(base: AgentProfile, /, **overrides: Any) -> AgentProfile:
    """A copy of ``base`` with ``overrides`` applied (validated like a new profile)."""
    return define_agent_profile({**base.model_dump(), **overrides})


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("tools", "subagents"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return data


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "profile"
    return f"{field}: {error['msg']}"
