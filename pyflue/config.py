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
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"]) or "config"
            if error["type"] == "extra_forbidden":
                known = ", ".join(AgentConfig.model_fields)
                raise ConfigError(
                    f"agent {agent!r}: unknown config key {key!r}; known keys: {known}"
                ) from None
            raise ConfigError(f"agent {agent!r}: config key {key!r}: {error['msg']}") from None
    else:
        raise ConfigError(
            f"agent {agent!r}: the initializer must return a dict or AgentConfig, got {type(value).__name__}"
        )
    if config.profile is not None:
        config = _apply_profile(config, config.profile)
    return config


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
