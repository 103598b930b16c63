"""The one table of model limits, and what a Model must declare."""

from __future__ import annotations

from typing import Any

import pytest

from pyflue.errors import ConfigError
from pyflue.models import ModelLimits, model_limits, register_provider, resolve_model
from pyflue.models.anthropic import AnthropicModel, default_max_tokens
from pyflue.models.openai import OpenAIChatModel


@pytest.mark.parametrize(
    ("name", "window", "output"),
    [
        ("claude-opus-4-1", 200_000, 32_000),
        ("claude-sonnet-4-5-20250929", 200_000, 64_000),
        ("claude-haiku-4-5", 200_000, 64_000),
        ("claude-3-7-sonnet-latest", 200_000, 64_000),
        ("claude-3-5-haiku-latest", 200_000, 8_192),
        ("claude-3-haiku-20240307", 200_000, 4_096),
        ("claude-next-9", 200_000, 8_192),
        ("anthropic/claude-sonnet-4", 200_000, 64_000),  # an OpenRouter-style name
        ("GPT-4.1-mini", 1_047_576, 32_768),
        ("gpt-4o-mini", 128_000, 16_384),
        ("gpt-5-mini", 400_000, 128_000),
        ("o3-mini", 200_000, 100_000),
        ("o4-mini", 200_000, 100_000),
        ("llama3.1:8b", 32_768, 4_096),  # unknown: conservative
    ],
)
def test_model_limits(name: str, window: int, output: int) -> None:
    assert model_limits(name) == ModelLimits(window, output)


def test_anthropic_max_tokens_come_from_the_same_table() -> None:
    for name in ("claude-opus-4-1", "claude-3-haiku-20240307", "claude-next-9", "local"):
        assert default_max_tokens(name) == model_limits(name).max_output


def test_providers_declare_native_output() -> None:
    assert (
        AnthropicModel("claude-haiku-4-5", api_key="k", base_url="http://127.0.0.1:1").output_mode == "native"
    )
    assert OpenAIChatModel("gpt-4.1-mini", base_url="http://127.0.0.1:1/v1").output_mode == "native"


class _NoOutputMode:
    provider = "mine"
    model_name = "m"

    async def request(self, request: Any) -> Any: ...

    def stream(self, request: Any) -> Any: ...


def test_a_model_without_output_mode_is_refused_with_what_it_lacks() -> None:
    with pytest.raises(ConfigError, match=r"got _NoOutputMode \(it lacks output_mode\)"):
        resolve_model(_NoOutputMode())  # type: ignore[arg-type]
    register_provider("lacking", lambda name, env: _NoOutputMode())  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match=r"provider 'lacking' must be .* \(it lacks output_mode\)"):
        resolve_model("lacking/m", env={})
