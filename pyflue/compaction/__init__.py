"""Compaction: keep a long session inside its model's context window.

- :mod:`.settings`: a :class:`~pyflue.config.CompactionConfig` resolved for one model.
- :mod:`.estimate`: token estimates of messages and prompts.
- :mod:`.cut`: where a history may be cut (never between a tool call and its result).
- :mod:`.summary`: summarising older messages into one summary message, and reading it back.
- :mod:`.compactor`: the turn loop's hooks, and compaction on demand.

See docs/compaction.md.
"""

from __future__ import annotations

from ..config import CompactionConfig
from ..models.limits import ModelLimits, model_limits
from .compactor import CompactionResult, Compactor, compact_session
from .cut import find_cut
from .estimate import estimate_tokens
from .settings import CompactionSettings
from .summary import summary_of

__all__ = [
    "CompactionConfig",
    "CompactionResult",
    "CompactionSettings",
    "Compactor",
    "ModelLimits",
    "compact_session",
    "estimate_tokens",
    "find_cut",
    "model_limits",
    "summary_of",
]
