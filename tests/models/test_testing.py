"""The offline models: what TestModel answers, in words, and that it stays deterministic and typed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.models import (
    AssistantMessage,
    Model,
    ModelRequest,
    OutputSchema,
    ResponseBuilder,
    TextPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    UserMessage,
)
from pyflue.models.testing import FunctionModel, TestModel, offline_summary

COUNT = ToolDefinition(
    "count_words", "Count words.", {"type": "object", "properties": {"text": {"type": "string"}}}
)
SUMMARIZE = ToolDefinition("summarize", "Summarize.", {"type": "object", "properties": {}})


def after_tools(*results: ToolResultPart, output: OutputSchema | None = None) -> ModelRequest:
    calls = [ToolCallPart(r.call_id, r.name, {}) for r in results]
    return ModelRequest(
        [UserMessage([TextPart("go")]), AssistantMessage(list(calls)), UserMessage(list(results))],
        tools=[COUNT, SUMMARIZE],
        output=output,
    )


async def test_the_answer_after_tool_calls_says_it_is_the_offline_model() -> None:
    request = after_tools(
        ToolResultPart("c0", "count_words", "1"),
        ToolResultPart("c1", "summarize", '{"summary":  "a   short\n text"}'),
    )
    response = await TestModel().request(request)
    assert response.text == (
        "[test model] called count_words, summarize; no real model was used. "
        'Results: count_words: 1; summarize: {"summary": "a short text"}'
    )
    builder = ResponseBuilder()
    async with TestModel().stream(request) as events:
        async for event in events:
            builder.add(event)
    assert builder.build().text == response.text  # streaming gives the same words


def test_the_summary_is_brief_and_names_failures() -> None:
    text = offline_summary(
        [ToolResultPart("c0", "fetch", "x" * 500), ToolResultPart("c1", "fetch", "boom", is_error=True)]
    )
    assert text == (
        "[test model] called fetch; no real model was used. "
        f"Results: fetch: {'x' * 57}...; fetch failed: boom"
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "count_words"]), st.text(max_size=200)), min_size=1, max_size=5
    )
)
def test_the_summary_is_deterministic_and_bounded(results: list[tuple[str, str]]) -> None:
    parts = [ToolResultPart(f"c{i}", name, content) for i, (name, content) in enumerate(results)]
    text = offline_summary(parts)
    assert text == offline_summary(parts)
    assert text.startswith("[test model] called ") and "no real model was used" in text
    assert len(text) <= 120 + len(parts) * 80


async def test_typed_output_stays_schema_valid_json() -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    request = after_tools(
        ToolResultPart("c0", "count_words", "1"), output=OutputSchema("final_result", schema)
    )
    assert json.loads((await TestModel().request(request)).text) == {"summary": "a"}


def test_every_model_declares_its_output_mode() -> None:
    assert TestModel().output_mode == "native"
    assert FunctionModel(lambda r: "x").output_mode == "prompted"
    assert FunctionModel(lambda r: "x", output_mode="native").output_mode == "native"
    assert isinstance(TestModel(), Model) and isinstance(FunctionModel(lambda r: "x"), Model)
    with pytest.raises(ConfigError, match="output_mode must be 'native' or 'prompted'"):
        FunctionModel(lambda r: "x", output_mode="tool")  # type: ignore[arg-type]
