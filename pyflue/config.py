"""What configures an agent: the agent config an initializer returns, the profiles it can be based
on or delegate to, and its compaction settings — validated once, with errors that name the key.

These are data, below everything that runs an agent, so every layer above can import them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .mcp.specs import MCPServerSpec, parse_server_specs
from .models.base import Model, ModelSettings, settings_adapter
from .sandbox.protocol import Sandbox
from .skills.documents import Role, Skill
from .tools import Tool, as_tool

__all__ = ["AgentConfig", "AgentProfile", "CompactionConfig", "check_model_settings", "parse_config"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_model_settings(value: Mapping[str, Any]) -> dict[str, Any]:
    """``model_settings`` checked against :class:`~pyflue.models.base.ModelSettings`: a misspelt or
    mistyped setting fails where it is configured, not as a provider's HTTP 400 (or not at all) on the
    first prompt. Raises ``ValueError`` saying which setting is wrong; callers add whose it is."""
    known = ModelSettings.__optional_keys__
    unknown = sorted(key for key in value if key not in known)
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))} "
            "(provider-specific fields go in extra_body)"
        )
    try:
        return dict(settings_adapter().validate_python(value))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"{where}: {error['msg']}") from None


def _check_sandbox(value: Any) -> Any:
    """``None``, ``"virtual"`` or an object implementing :class:`~pyflue.sandbox.Sandbox`
    (``local(path)`` is one); resolved once per agent instance by the harness."""
    if value is None or value == "virtual" or isinstance(value, Sandbox):
        return value
    raise ValueError(
        f"must be 'virtual', local(path) or an object implementing the Sandbox protocol, "
        f"got {type(value).__name__}"
    )


def _check_skills(value: Any) -> tuple[str | Path | Skill, ...] | None:
    """A list of skill names, paths or :class:`~pyflue.skills.Skill` objects (resolved against the
    project's skills by the harness)."""
    if value is None:
        return None
    if isinstance(value, str | Path | Skill) or not isinstance(value, list | tuple):
        raise ValueError("must be a list of skill names, paths or Skill objects")
    for index, entry in enumerate(value):
        if not isinstance(entry, str | Path | Skill):
            raise ValueError(f"entry {index} is a {type(entry).__name__}, not a skill name, path or Skill")
    return tuple(value)


def _check_role(value: Any) -> Any:
    if value is None or isinstance(value, Role) or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError(f"must be the name of a role (roles/<name>.md) or a Role, got {value!r:.60}")


def _check_mcp_servers(value: Any) -> tuple[MCPServerSpec, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | Mapping) or not isinstance(value, list | tuple):
        raise ValueError(
            "must be a list of server specs ({'name': ..., 'command': [...]} or {'name': ..., 'url': ...})"
        )
    try:
        return parse_server_specs(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


# The keys agents and profiles share, checked by one validator each wherever they appear.
SandboxKey = Annotated[Any, BeforeValidator(_check_sandbox)]
SkillsKey = Annotated[tuple[str | Path | Skill, ...] | None, BeforeValidator(_check_skills)]
RoleKey = Annotated[str | Role | None, BeforeValidator(_check_role)]


class CompactionConfig(BaseModel):
    """When and how a long session is summarised to fit the model's context window.

    ``None`` fields take the model's known defaults (:func:`model_limits`): ``context_window_tokens``
    from the model, ``reserve_tokens`` = min(20 000, the model's max output). ``keep_recent_tokens``
    of the newest messages stay verbatim. ``model`` summarises (default: the operation's model);
    ``instructions`` are added to the summariser's prompt (what to preserve). ``enabled=False`` turns
    automatic compaction off; ``session.compact()`` still works.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    enabled: bool = True
    context_window_tokens: int | None = Field(default=None, gt=0)
    reserve_tokens: int | None = Field(default=None, ge=0)
    keep_recent_tokens: int = Field(default=8_000, ge=0)
    model: str | Model | None = None
    instructions: str | None = None


class AgentProfile(BaseModel):
    """A named, immutable agent configuration.

    ``name`` is what ``session.task(agent=...)`` and the model's ``task`` tool use: 1-64 letters,
    digits, ``-`` or ``_``. ``description`` tells the parent model when to delegate to it. ``tools``
    are normalised to :class:`~pyflue.tools.Tool` objects and ``subagents`` must be profiles with
    distinct names. ``None`` means "not set": inherited from the parent when used as a subagent.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True, defer_build=True)

    name: str
    description: str = ""
    instructions: str | Callable[..., Any] | None = None
    model: str | Model | None = None
    tools: tuple[Tool, ...] = ()
    subagents: tuple[AgentProfile, ...] = ()
    model_settings: dict[str, Any] | None = None
    compaction: CompactionConfig | bool | None = None
    max_turns: int | None = None
    sandbox: SandboxKey = None
    sandbox_tools: bool | None = None
    skills: SkillsKey = None
    role: RoleKey = None
    project_instructions: bool | None = None
    mcp_servers: Annotated[tuple[MCPServerSpec, ...] | None, BeforeValidator(_check_mcp_servers)] = None

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
        return check_model_settings(value)

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


class AgentConfig(BaseModel):
    """The keys an agent config may have. Unknown keys and wrong types raise ``ConfigError``
    naming the key and the agent."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    model: Any = None
    instructions: str | Callable[..., Any] | None = None
    tools: list[Any] = Field(default_factory=list)
    subagents: list[AgentProfile] = Field(default_factory=list)
    compaction: CompactionConfig | bool | None = None
    model_settings: dict[str, Any] = Field(default_factory=dict)
    max_turns: int = Field(25, ge=1)
    output_retries: int = Field(2, ge=0)
    max_task_depth: int = Field(3, ge=0)
    tool_timeout: float | None = Field(None, gt=0)
    description: str | None = None
    profile: AgentProfile | None = None
    sandbox: SandboxKey = None
    sandbox_tools: bool = False
    skills: SkillsKey = None
    role: RoleKey = None
    project_instructions: bool = True
    mcp_servers: tuple[MCPServerSpec, ...] = ()

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _check_mcp_servers(cls, value: Any) -> Any:
        return _check_mcp_servers(value) or ()


def parse_config(value: Any, agent: str) -> AgentConfig:
    if isinstance(value, AgentConfig):
        config = value
    elif isinstance(value, dict):
        try:
            config = AgentConfig.model_validate(value)
        except ValidationError as exc:
            errors = exc.errors()
            loc = errors[0]["loc"]
            key = str(loc[0]) if loc else "config"
            if errors[0]["type"] == "extra_forbidden" and len(loc) == 1:
                known = ", ".join(AgentConfig.model_fields)
                raise ConfigError(
                    f"agent {agent!r}: unknown config key {key!r}; known keys: {known}"
                ) from None
            # The key itself, then what is wrong (every alternative of a union type, e.g. str or callable).
            problems = "; or ".join(
                dict.fromkeys(
                    ".".join(str(p) for p in e["loc"][1:]) + ": " + e["msg"]
                    if len(e["loc"]) > 1
                    else e["msg"]
                    for e in errors
                    if e["loc"][:1] == loc[:1]
                )
            )
            raise ConfigError(f"agent {agent!r}: config key {key!r}: {problems}") from None
    else:
        raise ConfigError(
            f"agent {agent!r}: the initializer must return a dict or AgentConfig, got {type(value).__name__}"
        )
    if config.profile is not None:
        config = _apply_profile(config, config.profile)
    if config.model_settings:
        try:
            config.model_settings = check_model_settings(config.model_settings)
        except ValueError as exc:
            raise ConfigError(f"agent {agent!r}: config key 'model_settings': {exc}") from None
    return config


def _apply_profile(config: AgentConfig, profile: AgentProfile) -> AgentConfig:
    """An agent based on a profile: the agent's own keys win, the profile fills the rest."""
    own = config.model_fields_set
    updates: dict[str, Any] = {}
    for key in (
        "model",
        "instructions",
        "model_settings",
        "compaction",
        "max_turns",
        "description",
        "sandbox",
        "sandbox_tools",
        "skills",
        "role",
        "project_instructions",
        "mcp_servers",
    ):
        value = getattr(profile, key)
        if key not in own and value is not None and not (isinstance(value, str) and value == ""):
            updates[key] = value
    if "tools" not in own and profile.tools:
        updates["tools"] = list(profile.tools)
    if "subagents" not in own and profile.subagents:
        updates["subagents"] = list(profile.subagents)
    return config.model_copy(update=updates)
