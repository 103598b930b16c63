"""What a model can take in and give out: one table of known models' context windows and output limits.

Compaction reads the context window to decide when a session must be summarised; the Anthropic provider
sends the model's maximum output as ``max_tokens`` when the settings name none (the API requires one,
and the model's maximum lets long answers finish instead of stopping at "length"). Figures are the
providers' documented ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelLimits", "model_limits"]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """``context_window``: tokens of prompt plus answer; ``max_output``: tokens of one answer."""

    context_window: int
    max_output: int


# By name prefix, first match wins: a more specific prefix goes before a shorter one it starts with.
_KNOWN: tuple[tuple[str, ModelLimits], ...] = (
    ("claude-opus-4", ModelLimits(200_000, 32_000)),
    ("claude-sonnet-4", ModelLimits(200_000, 64_000)),
    ("claude-haiku-4", ModelLimits(200_000, 64_000)),
    ("claude-3-7-sonnet", ModelLimits(200_000, 64_000)),
    ("claude-3-5", ModelLimits(200_000, 8_192)),
    ("claude-3", ModelLimits(200_000, 4_096)),
    ("gpt-4.1", ModelLimits(1_047_576, 32_768)),
    ("gpt-4o", ModelLimits(128_000, 16_384)),
    ("gpt-5", ModelLimits(400_000, 128_000)),
    ("o3", ModelLimits(200_000, 100_000)),
    ("o4-mini", ModelLimits(200_000, 100_000)),
    # Claude models not listed above (newer ones): every Claude model has a 200K window and answers at
    # least 8 192 tokens.
    ("claude-", ModelLimits(200_000, 8_192)),
)
# Unknown models (local ones included) get a window most serve; a provider's overflow error still
# makes compaction summarise, so guessing low only compacts earlier.
_DEFAULT = ModelLimits(32_768, 4_096)


def model_limits(model_name: str) -> ModelLimits:
    """The known limits of a model, by name prefix, case-insensitively; a ``provider/`` prefix (an
    OpenRouter-style ``anthropic/claude-sonnet-4``) is ignored. Unknown models get a conservative
    default (32 768-token window, 4 096-token answers)."""
    name = model_name.lower().rsplit("/", 1)[-1]
    for prefix, limits in _KNOWN:
        if name.startswith(prefix):
            return limits
    return _DEFAULT
