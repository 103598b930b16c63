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

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .compaction import CompactionConfig
from .errors import ConfigError
from .models.base import Model, ModelSettings, settings_adapter
from .tools import Tool, as_tool

__all__ = ["AgentProfile", "define_agent_profile", "extend_agent_profile", "find_profile"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SETTINGS = frozenset(ModelSettings.__annotations__)


class AgentProfile(BaseModel):
    """A named, immutable agent configuration.

    ``name`` is what ``session.task(agent=...)`` and the model's ``task`` tool use: 1-64 letters,
    digits, ``-`` or ``_``. ``description`` tells the parent model when to delegate to it. ``tools``
    are normalised to :class:`~pyflue.tools.Tool` objects and ``subagents`` must be profiles with
    distinct names. ``None`` means "not set": inherited from the parent when used as a subagent.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    name: str
    description: str = ""
    instructions: str | Callable[..., Any] | None = None
    model: str | Model | None = None
    tools: tuple[Tool, ...] = ()
    subagents: tuple[AgentProfile, ...] = ()
    model_settings: dict[str, Any] | None = None
    compaction: CompactionConfig | bool | None = None
    max_turns: int | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '-' or '_'")
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _check_tools(cls, value: Any) -> tuple[Tool, ...]:
        if isinstance(value, Tool) or callable(value) or not isinstance(value, list | tuple):
            raise ValueError("must be a list of tools")
        tools: list[Tool] = []
        for index, entry in enumerate(value):
            if not (isinstance(entry, Tool) or callable(entry)):
                raise ValueError(
                    f"entry {index} is a {type(entry).__name__}, not a tool (define_tool(...) or a function)"
                )
            try:
                tool = as_tool(entry, "profile")
            except ConfigError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
            if any(t.name == tool.name for t in tools):
                raise ValueError(f"two tools are named {tool.name!r}")
            tools.append(tool)
        return tuple(tools)

    @field_validator("subagents", mode="before")
    @classmethod
    def _check_subagents(cls, value: Any) -> tuple[AgentProfile, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of profiles made by define_agent_profile")
        names: set[str] = set()
        for index, entry in enumerate(value):
            if not isinstance(entry, AgentProfile):
                raise ValueError(
                    f"entry {index} is a {type(entry).__name__}, not a profile made by define_agent_profile"
                )
            if entry.name in names:
                raise ValueError(f"two subagents are named {entry.name!r}")
            names.add(entry.name)
        return tuple(value)

    @field_validator("model_settings")
    @classmethod
    def _check_settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - _SETTINGS)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(_SETTINGS))}")
        try:
            return dict(settings_adapter().validate_python(value))
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            raise ValueError(f"{key}: {error['msg']}") from None

    @field_validator("model", mode="before")
    @classmethod
    def _check_model(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | Model):
            raise ValueError(
                f"must be a 'provider/model' string or a Model object, got {type(value).__name__}"
            )
        return value

    @field_validator("compaction", mode="before")
    @classmethod
    def _check_compaction(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            try:
                return CompactionConfig.model_validate(value)
            except ValidationError as exc:
                error = exc.errors()[0]
                key = ".".join(str(p) for p in error["loc"])
                raise ValueError(f"{key}: {error['msg']}") from None
        if value is not None and not isinstance(value, bool | CompactionConfig):
            raise ValueError("must be a CompactionConfig, a dict of its fields, or False to disable it")
        return value

    @field_validator("max_turns")
    @classmethod
    def _check_max_turns(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1")
        return value

    def __repr__(self) -> str:
        return f"AgentProfile({self.name!r})"


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
    from .errors import UnknownAgentError

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
