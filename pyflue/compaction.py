"""Compaction settings (the algorithm lives beside them as it lands; see docs/compaction.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["CompactionConfig"]


class CompactionConfig(BaseModel):
    """When and how a long session is summarised to fit the model's context window.

    ``None`` fields take the model's known defaults: ``context_window_tokens`` from the model,
    ``reserve_tokens`` = min(20 000, the model's max output), ``keep_recent_tokens`` 8 000.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    enabled: bool = True
    context_window_tokens: int | None = None
    reserve_tokens: int | None = None
    keep_recent_tokens: int = 8_000
    model: str | None = None
    instructions: str | None = None
