"""Agent configuration: what an agent's initializer returns, validated with a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .compaction import CompactionConfig
from .errors import ConfigError
from .profiles import AgentProfile

__all__ = ["AgentConfig", "parse_config"]


class AgentConfig(BaseModel):
    """The keys an agent config may have. Unknown keys and wrong types raise ``ConfigError``
    naming the key and the agent."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

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
        config.model_settings = _settings(config.model_settings, agent)
    return config


def _settings(value: dict[str, Any], agent: str) -> dict[str, Any]:
    """``model_settings`` checked against :class:`~pyflue.models.base.ModelSettings`: a misspelt or
    mistyped setting fails here, not as a provider's HTTP 400 (or not at all) on the first prompt."""
    from .models.base import ModelSettings, settings_adapter

    unknown = [key for key in value if key not in ModelSettings.__optional_keys__]
    if unknown:
        known = ", ".join(sorted(ModelSettings.__optional_keys__))
        raise ConfigError(
            f"agent {agent!r}: config key 'model_settings': unknown setting {unknown[0]!r}; known: {known} "
            "(provider-specific fields go in extra_body)"
        )
    try:
        return dict(settings_adapter().validate_python(value))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"agent {agent!r}: config key 'model_settings': {where}: {error['msg']}") from None


def _apply_profile(config: AgentConfig, profile: AgentProfile) -> AgentConfig:
    """An agent based on a profile: the agent's own keys win, the profile fills the rest."""
    own = config.model_fields_set
    updates: dict[str, Any] = {}
    for key in ("model", "instructions", "model_settings", "compaction", "max_turns", "description"):
        value = getattr(profile, key if key != "description" else "description", None)
        if key not in own and value not in (None, ""):
            updates[key] = value
    if "tools" not in own and profile.tools:
        updates["tools"] = list(profile.tools)
    if "subagents" not in own and profile.subagents:
        updates["subagents"] = list(profile.subagents)
    return config.model_copy(update=updates)
