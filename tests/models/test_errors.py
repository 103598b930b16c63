"""Errors that say what happened: bad base URLs, unreachable servers, a JSON answer to a stream."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from pyflue.errors import ConfigError, ModelConnectionError, OverloadedError, RateLimitError, StreamError
from pyflue.models import ModelRequest, TextPart, UserMessage, resolve_model
from pyflue.models._http import describe_error
from pyflue.models.anthropic import AnthropicModel
from pyflue.models.openai import OpenAIChatModel
from tests.models import anthropic_fixtures as afx
from tests.wire import Reply, WireServer


def ask() -> ModelRequest:
    return ModelRequest([UserMessage([TextPart("Hello")])])


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("anthropic/claude-haiku-4-5", "ANTHROPIC_BASE_URL"),
        ("openai/gpt-4.1-mini", "OPENAI_BASE_URL"),
        ("ollama/llama3.1", "OLLAMA_BASE_URL"),
    ],
)
@pytest.mark.parametrize("url", ["http://[::1", "ftp://example.com/v1", "not a url", "http://"])
def test_a_bad_base_url_variable_is_a_config_error_naming_it(model: str, variable: str, url: str) -> None:
    env = {"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k", variable: url}
    with pytest.raises(ConfigError, match=variable):
        resolve_model(model, env=env)


@pytest.mark.parametrize("cls", [AnthropicModel, OpenAIChatModel])
def test_a_bad_base_url_argument_is_a_config_error(cls: Any) -> None:
    with pytest.raises(ConfigError, match=r"^base_url is not a valid URL"):
        cls("m", api_key="k", base_url="http://[::1")
    assert cls("m", api_key="k", base_url="http://[::1]:8080/v1/").base_url == "http://[::1]:8080/v1"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("cls", [AnthropicModel, OpenAIChatModel])
async def test_a_refused_connection_says_what_happened(cls: Any) -> None:
    model = cls(
        "m", api_key="k", base_url=f"http://127.0.0.1:{_closed_port()}", max_retries=1, retry_base_delay=0.001
    )
    with pytest.raises(ModelConnectionError) as info:
        await model.request(ask())
    message = str(info.value)
    assert "after 2 attempt(s): ConnectError" in message
    assert ": ;" not in message and "check the base URL" in message
    assert len(message) < 500


def test_describe_error_names_the_type_and_the_root_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
        except OSError as root:
            raise httpx.ConnectError("") from root
    except httpx.ConnectError as exc:
        assert (
            describe_error(exc)
            == "ConnectError (ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 9))"
        )
    assert describe_error(httpx.ReadError("")) == "ReadError (no details given)"
    assert describe_error(httpx.ReadError("x" * 1000)).endswith("...")
    assert len(describe_error(httpx.ReadError("x" * 1000))) == 300
    group = ExceptionGroup("all attempts failed", [OSError("connection refused")])
    assert describe_error(group) == (
        "ExceptionGroup: all attempts failed (1 sub-exception) (OSError: connection refused)"
    )


# -- an Anthropic JSON answer to a streaming request ---------------------------------------------------


def anthropic(wire: WireServer) -> AnthropicModel:
    return AnthropicModel("claude-haiku-4-5", api_key="k", base_url=wire.url, max_retries=0)


async def _stream_error(model: AnthropicModel) -> Exception:
    with pytest.raises(Exception) as info:
        async with model.stream(ask()) as stream:
            async for _ in stream:
                pass
    return info.value  # type: ignore[return-value]


async def test_a_json_message_answered_to_a_stream_is_named_as_such(wire: WireServer) -> None:
    wire.json(afx.message([afx.text("not streamed")]))
    error = await _stream_error(anthropic(wire))
    assert isinstance(error, StreamError)
    assert "answered a streaming request with JSON instead of an event stream" in str(error)
    assert "middle of an event" not in str(error)


@pytest.mark.parametrize(
    ("error_type", "cls"), [("overloaded_error", OverloadedError), ("rate_limit_error", RateLimitError)]
)
async def test_a_json_error_answered_to_a_stream_is_the_api_error(
    wire: WireServer, error_type: str, cls: type[Exception]
) -> None:
    wire.json(afx.error(error_type, "try later"))
    error = await _stream_error(anthropic(wire))
    assert type(error) is cls and "try later" in str(error)


async def test_a_body_that_is_not_an_event_stream(wire: WireServer) -> None:
    wire.reply(Reply(200, chunks=[b"<html>proxy login</html>"], headers={"content-type": "text/html"}))
    error = await _stream_error(anthropic(wire))
    assert isinstance(error, StreamError)
    assert "something other than an event stream (content-type 'text/html')" in str(error)
