"""Model strings to :class:`Model` objects.

``provider/model`` (the seed's form) and ``provider:model`` (PyFlue 0.2.0's form) both resolve; the
provider is the text before the first ``/`` or ``:``, so ``openrouter/anthropic/claude-sonnet-4`` and
``ollama:llama3.1:8b`` keep the rest as the model name. ``test`` is the offline
:class:`~pyflue.models.testing.TestModel`. ``PYFLUE_MODEL``, when set, replaces every model *string*
an agent names (model objects passed in code are left alone), so any project runs offline with
``PYFLUE_MODEL=test``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Model

__all__ = ["known_providers", "register_provider", "resolve_model"]

ProviderFactory = Callable[[str, Mapping[str, str]], Model]
"""``factory(model_name, env) -> Model``; ``env`` is the environment to read keys and URLs from."""

_providers: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make ``name/<model>`` resolve through ``factory``. Replaces a provider of the same name."""
    if not name or "/" in name or ":" in name:
        raise ConfigError(f"provider name {name!r} must be non-empty without '/' or ':'")
    _providers[name] = factory


def known_providers() -> list[str]:
    return sorted({*_providers, *_COMPATIBLE, "anthropic", "openai", "test"})


def resolve_model(model: str | Model | None, env: Mapping[str, str] | None = None) -> Model:
    """The :class:`Model` for a model string or object, honouring ``PYFLUE_MODEL``."""
    env = os.environ if env is None else env
    if model is not None and not isinstance(model, str):
        return _checked(model, "model")
    override = env.get("PYFLUE_MODEL")
    if override:
        model = override
    if not model:
        raise ConfigError(
            "no model configured; set 'model' on the agent (e.g. 'anthropic/claude-haiku-4-5'), "
            "or PYFLUE_MODEL=test to run offline"
        )
    provider, name = _split(model)
    if provider == "test":
        from .testing import TestModel

        return TestModel()
    if provider in _providers:
        return _checked(_providers[provider](name, env), f"provider {provider!r}")
    if provider == "anthropic":
        return _anthropic(name, env)
    if provider == "openai":
        return _openai(
            name, env, "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1", True
        )
    if provider in _COMPATIBLE:
        spec = _COMPATIBLE[provider]
        return _openai(name, env, provider, spec.key_env, spec.url_env, spec.base_url, spec.key_required)
    raise ConfigError(
        f"unknown model provider {provider!r} in {model!r}; known: {', '.join(known_providers())} "
        "(or register_provider() your own)"
    )


def _checked(model: object, source: str) -> Model:
    """``model`` if it implements :class:`Model`; else a ConfigError saying what it lacks."""
    if isinstance(model, Model):
        return model
    missing = [
        n for n in ("provider", "model_name", "output_mode", "request", "stream") if not hasattr(model, n)
    ]
    lacks = f" (it lacks {', '.join(missing)})" if missing else ""
    raise ConfigError(
        f"{source} must be a 'provider/model' string or a Model object, got {type(model).__name__}{lacks}; "
        "a Model has provider, model_name, output_mode ('native' or 'prompted'), request() and stream()"
    )


def _split(model: str) -> tuple[str, str]:
    model = model.strip()
    if model == "test" or model.startswith(("test/", "test:")):
        return "test", model[5:]
    cut = min((i for i in (model.find("/"), model.find(":")) if i > 0), default=-1)
    if cut < 0 or cut == len(model) - 1:
        raise ConfigError(
            f"model {model!r} must look like 'provider/model' (e.g. 'anthropic/claude-haiku-4-5', "
            "'openai/gpt-4.1-mini', 'ollama/llama3.1') or be 'test'"
        )
    return model[:cut], model[cut + 1 :]


def _key(env: Mapping[str, str], var: str, required: bool) -> str | None:
    key = env.get(var)
    if not key and required:
        raise ConfigError(
            f"{var} is not set; export it, pass api_key=..., or use model='test' "
            "(or PYFLUE_MODEL=test) to run offline"
        )
    return key or None


def _anthropic(name: str, env: Mapping[str, str]) -> Model:
    from ._http import check_base_url
    from .anthropic import AnthropicModel

    base = check_base_url(env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com", "ANTHROPIC_BASE_URL")
    return AnthropicModel(name, api_key=_key(env, "ANTHROPIC_API_KEY", True), base_url=base)


def _openai(
    name: str,
    env: Mapping[str, str],
    provider: str,
    key_env: str,
    url_env: str | None,
    default_url: str | None,
    key_required: bool,
) -> Model:
    from ._http import check_base_url
    from .openai import OpenAIChatModel

    base = (env.get(url_env) if url_env else None) or default_url
    if not base:
        raise ConfigError(f"{provider} needs a base URL; export {url_env}=http://host:port/v1")
    base = check_base_url(base, url_env or "base_url")
    return OpenAIChatModel(
        name, api_key=_key(env, key_env, key_required), base_url=base, provider_name=provider
    )


@dataclass(frozen=True, slots=True)
class _Compatible:
    key_env: str
    url_env: str | None
    base_url: str | None
    key_required: bool


# OpenAI-compatible endpoints by name; each reads its own key and base-URL variables.
_COMPATIBLE: dict[str, _Compatible] = {
    "ollama": _Compatible("OLLAMA_API_KEY", "OLLAMA_BASE_URL", "http://localhost:11434/v1", False),
    "lmstudio": _Compatible("LMSTUDIO_API_KEY", "LMSTUDIO_BASE_URL", "http://localhost:1234/v1", False),
    "vllm": _Compatible("VLLM_API_KEY", "VLLM_BASE_URL", "http://localhost:8000/v1", False),
    "openrouter": _Compatible(
        "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1", True
    ),
    "gemini": _Compatible(
        "GEMINI_API_KEY", "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com/v1beta/openai", True
    ),
    "openai-compatible": _Compatible("OPENAI_API_KEY", "OPENAI_BASE_URL", None, False),
}
