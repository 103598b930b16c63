"""Agent profiles: reusable named configurations, used as subagents or as the base of an agent.

A profile is data, checked once when it is defined: ``define_agent_profile`` raises ``ConfigError``
naming the field that is wrong, so a typo fails at import time instead of at the first task.

How a profile is used decides what it inherits (as TypeScript Flue defines it):

- As a **subagent** (``"subagents": [reviewer]``), its ``instructions``, ``tools`` and ``subagents``
  are its own and only its own (a reviewer never gets the parent's tools by accident); ``model``,
  ``model_settings``, ``compaction`` and ``max_turns`` fall back to the parent's when the profile
  leaves them unset. See :mod:`pyflue.tasks`.
- As the **base of an agent** (``"profile": reviewer`` in an agent config), every key the agent sets
  wins and the profile fills in the rest (:func:`pyflue.config.parse_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .config import AgentProfile
from .errors import ConfigError, UnknownAgentError

__all__ = ["AgentProfile", "define_agent_profile", "extend_agent_profile", "find_profile"]


def define_agent_profile(profile: Mapping[str, Any] | None = None, /, **fields: Any) -> AgentProfile:
    """A profile from a dict, keywords, or both (keywords win).

    Raises ``ConfigError`` naming the profile and the field that is missing or wrong.
    """
    if profile is not None and not isinstance(profile, Mapping):
        raise ConfigError(
            f"define_agent_profile expects a dict or keyword fields, got {type(profile).__name__}"
        )
    data = {**(profile or {}), **fields}
    try:
        return AgentProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"agent profile {data.get('name')!r}: {_first(exc)}") from None


def extend_agent_profile(base: AgentProfile, /, **overrides: Any) -> AgentProfile:
    """A new profile: ``base``'s fields with ``overrides`` replacing whole fields (a list of tools
    replaces the base's tools; ``model_settings`` replaces, not merges), validated like a new one.
    Give it a new ``name`` when both are subagents of one agent."""
    if not isinstance(base, AgentProfile):
        raise ConfigError(
            f"extend_agent_profile expects a profile made by define_agent_profile, got {type(base).__name__}"
        )
    fields = {name: getattr(base, name) for name in AgentProfile.model_fields}
    return define_agent_profile({**fields, **overrides})


def find_profile(
    profiles: list[AgentProfile] | tuple[AgentProfile, ...], name: str, owner: str
) -> AgentProfile:
    """The profile called ``name``; ``UnknownAgentError`` lists the available ones otherwise."""
    for profile in profiles:
        if profile.name == name:
            return profile
    if not profiles:
        raise UnknownAgentError(
            f"agent {owner!r} has no subagent {name!r}: it has no subagents; "
            "add profiles to its config's 'subagents' list"
        )
    available = ", ".join(sorted(p.name for p in profiles))
    raise UnknownAgentError(f"agent {owner!r} has no subagent {name!r}; available: {available}")


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = [str(p) for p in error["loc"]]
    field = location[0] if location else "profile"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = ", ".join(AgentProfile.model_fields)
        return f"unknown field {field!r}; known fields: {known}"
    if error["type"] == "missing":
        return f"field {field!r} is required"
    return f"field {field!r}: {message}"
