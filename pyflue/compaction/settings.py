"""Compaction settings resolved for one model: every number known, from the config and the
model's known limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import CompactionConfig
from ..errors import ConfigError
from ..models.base import Model
from ..models.limits import model_limits
from ..models.registry import resolve_model

__all__ = ["CompactionSettings"]

_MAX_RESERVE = 20_000


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
