"""Compaction settings resolved for one model: every number known, from the config and the
model's known limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import CompactionConfig
from ..errors import ConfigError
from ..models.base import Model
from ..models.registry import resolve_model

__all__ = ["CompactionSettings", "ModelLimits", "model_limits"]

# -- model limits ----------------------------------------------------------------------------------

# (name prefix, context window, max output tokens); the first match wins, so specific names go first.
_KNOWN_MODELS: tuple[tuple[str, int, int], ...] = (
    ("claude-opus-4", 200_000, 32_000),
    ("claude-sonnet-4", 200_000, 64_000),
    ("claude-haiku-4", 200_000, 64_000),
    ("claude-3-7-sonnet", 200_000, 64_000),
    ("claude-3-5", 200_000, 8_192),
    ("claude-3", 200_000, 4_096),
    ("gpt-4.1", 1_047_576, 32_768),
    ("gpt-4o", 128_000, 16_384),
    ("gpt-5", 400_000, 128_000),
    ("o3", 200_000, 100_000),
    ("o4-mini", 200_000, 100_000),
)
# Unknown models (local ones included) get a window most serve; a provider overflow still compacts.
_DEFAULT_LIMITS = (32_768, 4_096)
_MAX_RESERVE = 20_000


@dataclass(frozen=True, slots=True)
class ModelLimits:
    context_window: int
    max_output: int


def model_limits(model_name: str) -> ModelLimits:
    """The known context window and maximum output of a model, by name prefix (a ``provider/`` prefix
    such as OpenRouter's ``anthropic/claude-sonnet-4`` is ignored); a conservative default otherwise."""
    name = model_name.lower().rsplit("/", 1)[-1]
    for prefix, window, output in _KNOWN_MODELS:
        if name.startswith(prefix):
            return ModelLimits(window, output)
    return ModelLimits(*_DEFAULT_LIMITS)


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """A :class:`CompactionConfig` resolved for one model: every number known."""

    context_window: int
    reserve: int
    keep_recent: int
    summariser: Model | None  # None: the operation's own model
    instructions: str | None

    @property
    def threshold(self) -> int:
        """Compact when the prompt is estimated above this many tokens."""
        return self.context_window - self.reserve

    @classmethod
    def resolve(
        cls, config: CompactionConfig | None, model: Model, env: Mapping[str, str] | None = None
    ) -> CompactionSettings:
        """Fill ``config``'s unset numbers from ``model``'s known limits; ``ConfigError`` when the
        reserve leaves no room."""
        config = config or CompactionConfig()
        limits = model_limits(model.model_name)
        window = config.context_window_tokens or limits.context_window
        reserve = (
            config.reserve_tokens
            if config.reserve_tokens is not None
            else min(_MAX_RESERVE, limits.max_output)
        )
        if reserve >= window:
            raise ConfigError(
                f"compaction: reserve_tokens ({reserve}) must be below context_window_tokens ({window})"
            )
        summariser = resolve_model(config.model, env) if config.model is not None else None
        return cls(window, reserve, config.keep_recent_tokens, summariser, config.instructions)
