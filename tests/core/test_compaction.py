"""Compaction: defaults per model, the threshold and provider-overflow triggers (the latter against the
local Anthropic wire server), tool-call pairs never split (property-based), incremental summaries,
manual compaction, and the compacted history surviving a restart."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue import CompactionConfig, ToolContext, create_agent, define_agent_profile, define_tool, init
from pyflue.compaction import (
    CompactionSettings,
    Compactor,
    estimate_tokens,
    find_cut,
    model_limits,
    summary_of,
)
from pyflue.config import parse_config
from pyflue.errors import AbortedError, ConfigError, ContextOverflowError
from pyflue.events import Event
from pyflue.models.anthropic import AnthropicModel
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import (
    AssistantMessage,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    text_of,
)
from pyflue.models.testing import FunctionModel
from pyflue.session import Session
from pyflue.stores.memory import MemorySessionStore
from pyflue.stores.sessions import SessionKey
from pyflue.stores.sqlite import SQLiteSessionStore
from tests.wire import WireServer

Message = UserMessage | AssistantMessage

SMALL = {"context_window_tokens": 2_000, "reserve_tokens": 400, "keep_recent_tokens": 300}


def small(summariser: Any) -> dict[str, Any]:
    """A 2 000-token window, summarised by a big-window model (so one call per compaction)."""
    return {**SMALL, "model": FunctionModel(summariser, model_name="claude-haiku-4-5")}


def is_summary_request(request: ModelRequest) -> bool:
    return not request.tools and "<conversation>" in text_of(request.messages[0])


class Scripted:
    """The agent's model: numbered replies to prompts, ``SUMMARY-<n>`` to summarisation requests."""

    def __init__(self, usage: Usage | None = None) -> None:
        self.requests: list[ModelRequest] = []
        self.summary_requests: list[ModelRequest] = []
        self.usage = usage or Usage(requests=1)

    def __call__(self, request: ModelRequest) -> ModelResponse:
        if is_summary_request(request):
            self.summary_requests.append(request)
            return ModelResponse(
                [TextPart(f"SUMMARY-{len(self.summary_requests)}")], Usage(50, 20, requests=1)
            )
        self.requests.append(request)
        return ModelResponse([TextPart(f"reply {len(self.requests)}")], self.usage)


async def start(
    config: dict[str, Any], events: list[Event] | None = None, store: Any = None, session_id: str = "main"
) -> Session:
    agent = create_agent(lambda ctx: config, name="writer")
    harness = await init(
        agent,
        session_store=store or MemorySessionStore(),
        on_event=events.append if events is not None else None,
    )
    return await harness.session(session_id)


def of(events: list[Event], type: str) -> list[Event]:
    return [e for e in events if e.type == type]


def assert_pairs_intact(history: list[Message]) -> None:
    """Every tool result answers a call earlier in the history, and every call is answered."""
    called: set[str] = set()
    answered: set[str] = set()
    for message in history:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                called.add(part.id)
            elif isinstance(part, ToolResultPart):
                assert part.call_id in called, f"result {part.call_id} without its call"
                answered.add(part.call_id)
    assert called == answered


def prompt_text(marker: str, size: int = 1_100) -> str:
    return (marker + " ") * (size // (len(marker) + 1))


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "window", "reserve"),
    [
        ("claude-haiku-4-5", 200_000, 20_000),
        ("claude-sonnet-4-5-20250929", 200_000, 20_000),
        ("claude-opus-4-1", 200_000, 20_000),
        ("anthropic/claude-sonnet-4", 200_000, 20_000),  # an OpenRouter-style name
        ("gpt-4.1-mini", 1_047_576, 20_000),
        ("gpt-4o", 128_000, 16_384),
        ("llama3.1:8b", 32_768, 4_096),  # unknown: conservative
    ],
)
def test_defaults_follow_the_model(model_name: str, window: int, reserve: int) -> None:
    settings = CompactionSettings.resolve(None, FunctionModel(lambda r: "", model_name=model_name))
    assert (settings.context_window, settings.reserve, settings.keep_recent) == (window, reserve, 8_000)
    assert settings.threshold == window - reserve
    assert model_limits("claude-opus-4-1").max_output == 32_000


def test_config_overrides_the_defaults_and_is_validated() -> None:
    model = FunctionModel(lambda r: "", model_name="claude-haiku-4-5")
    config = CompactionConfig(context_window_tokens=50_000, reserve_tokens=1_000, keep_recent_tokens=100)
    settings = CompactionSettings.resolve(config, model)
    assert (settings.context_window, settings.reserve, settings.keep_recent) == (50_000, 1_000, 100)
    with pytest.raises(
        ConfigError, match=r"reserve_tokens \(5000\) must be below context_window_tokens \(5000\)"
    ):
        CompactionSettings.resolve(CompactionConfig(context_window_tokens=5_000, reserve_tokens=5_000), model)
    with pytest.raises(ConfigError, match="agent 'writer': config key 'compaction'"):
        parse_config({"compaction": {"context_window_tokens": -1}}, "writer")


async def test_compaction_is_per_agent_and_can_be_disabled() -> None:
    model = FunctionModel(lambda r: "ok")
    assert isinstance((await start({"model": model})).harness.compactor(), Compactor)
    assert isinstance((await start({"model": model, "compaction": SMALL})).harness.compactor(), Compactor)
    assert (await start({"model": model, "compaction": False})).harness.compactor() is None
    assert (await start({"model": model, "compaction": {"enabled": False}})).harness.compactor() is None


# -- the threshold ---------------------------------------------------------------------------------


async def test_above_the_threshold_older_messages_are_summarised_and_persisted() -> None:
    model = Scripted()
    events: list[Event] = []
    store = MemorySessionStore()
    session = await start({"model": FunctionModel(model), "compaction": small(model)}, events, store)
    for index in range(5):  # ~280 tokens each: the 6th prompt crosses 2000 - 400
        await session.prompt(prompt_text(f"OLD{index}"))
    assert not of(events, "compaction_start")
    before = session.history
    result = await session.prompt(prompt_text("NEW"))

    (started,) = of(events, "compaction_start")
    (ended,) = of(events, "compaction_end")
    assert started.data["reason"] == ended.data["reason"] == "threshold"
    assert started.data["tokens_before"] > 1_600
    assert ended.data["tokens_after"] < 1_600 and ended.data["messages_summarised"] > 0
    assert started.operation_id == ended.operation_id == result.operation_id

    history = session.history
    assert summary_of(history[0]) == "SUMMARY-1"
    kept = history[1:-1]  # the newest prompt and kept messages are verbatim, then the answer
    assert kept == [*before, history[-2]][-len(kept) :]
    assert text_of(history[-2]).startswith("NEW") and text_of(history[-1]) == "reply 6"
    assert sum(estimate_tokens(m) for m in kept) <= 300
    assert ended.data["messages_summarised"] == len(before) + 1 - len(kept)
    assert await store.load(session.key) == history  # persisted, with no duplicate of the new turn

    # The model call went on with the compacted history.
    assert model.requests[-1].messages == history[:-1]
    (summary_request,) = model.summary_requests
    assert "OLD0" in text_of(summary_request.messages[0]) and "<previous_summary>" not in text_of(
        summary_request.messages[0]
    )
    # The summarisation call is a model call of the operation, inside the compaction.
    inside = [e.type for e in events if started.seq < e.seq < ended.seq]
    assert inside == ["model_start", "model_end"]
    assert result.usage == Usage(50, 20, requests=2)


async def test_the_estimate_starts_from_the_provider_reported_tokens() -> None:
    """The history is tiny by chars/4, but the provider said the last prompt was 1 500 tokens."""
    model = Scripted(usage=Usage(1_500, 10, requests=1))
    events: list[Event] = []
    session = await start({"model": FunctionModel(model), "compaction": small(model)}, events)
    await session.prompt("short one")
    await session.prompt("short two")
    assert not of(events, "compaction_start")  # 1 510 + a few tokens: still below 1 600
    await session.prompt(prompt_text("MORE", 400))
    (started,) = of(events, "compaction_start")
    assert started.data["tokens_before"] >= 1_510 + 100
    assert summary_of(session.history[0]) == "SUMMARY-1"


async def test_tool_call_pairs_survive_a_threshold_compaction() -> None:
    @define_tool
    def fetch(n: int) -> str:
        """Fetch."""
        return prompt_text(f"DATA{n}", 600)

    summaries: list[ModelRequest] = []

    def model(request: ModelRequest) -> ModelResponse:
        if is_summary_request(request):
            summaries.append(request)
            return ModelResponse([TextPart("SUMMARY")], Usage(requests=1))
        last = request.messages[-1]
        done = sum(
            1
            for m in request.messages
            if isinstance(m, UserMessage) and isinstance(m.parts[0], ToolResultPart)
        )
        if isinstance(last.parts[0], ToolResultPart) and done % 4 == 0:
            return ModelResponse([TextPart("all fetched")], Usage(requests=1))
        parts: list[Any] = [
            ToolCallPart(f"c{done}a", "fetch", {"n": done}),
            ToolCallPart(f"c{done}b", "fetch", {"n": done}),
        ]
        return ModelResponse(parts, Usage(requests=1), "tool_calls")

    store = MemorySessionStore()
    session = await start(
        {"model": FunctionModel(model), "tools": [fetch], "compaction": small(model)}, store=store
    )
    for _ in range(3):
        await session.prompt("fetch four rounds")
    assert summaries  # it compacted, mid-operation, between tool rounds
    history = session.history
    assert summary_of(history[0]) == "SUMMARY"
    assert_pairs_intact(history[1:])
    assert await store.load(session.key) == history


async def test_an_operation_that_fails_after_compacting_leaves_store_and_memory_equal() -> None:
    calls = 0

    def model(request: ModelRequest) -> ModelResponse | str:
        nonlocal calls
        if is_summary_request(request):
            return "SUMMARY"
        calls += 1
        if calls == 6:
            raise RuntimeError("provider exploded")
        return "ok"

    store = MemorySessionStore()
    session = await start({"model": FunctionModel(model), "compaction": small(model)}, store=store)
    for index in range(5):
        await session.prompt(prompt_text(f"OLD{index}"))
    with pytest.raises(RuntimeError):
        await session.prompt(prompt_text("NEW"))
    assert summary_of(session.history[0]) == "SUMMARY"  # the compaction itself stands
    assert not any("NEW" in text_of(m) for m in session.history)  # the unanswered prompt leaves no trace
    assert await store.load(session.key) == session.history


async def test_a_transcript_too_long_for_one_call_is_summarised_in_pieces() -> None:
    """The agent's own 2 000-token model summarises: ~1 400 tokens of history need two calls, the
    second updating the first's summary."""
    model = Scripted()
    session = await start({"model": FunctionModel(model), "compaction": SMALL})
    for index in range(6):
        await session.prompt(prompt_text(f"OLD{index}"))
    first, second = (text_of(r.messages[0]) for r in model.summary_requests)
    assert "<previous_summary>" not in first and "<previous_summary>\nSUMMARY-1\n" in second
    for index in range(5):  # every summarised prompt reached the summariser exactly once
        assert (f"OLD{index}" in first) != (f"OLD{index}" in second)
    assert summary_of(session.history[0]) == "SUMMARY-2"
    assert all(len(text_of(r.messages[0])) < 2_000 * 4 for r in model.summary_requests)


async def test_a_message_larger_than_the_window_fails_clearly_before_any_call() -> None:
    model = Scripted()
    session = await start({"model": FunctionModel(model), "compaction": SMALL})
    with pytest.raises(ContextOverflowError, match="nothing older is left to summarise"):
        await session.prompt(prompt_text("HUGE", 20_000))
    assert model.requests == [] and model.summary_requests == []
    assert session.history == []


# -- provider overflow -----------------------------------------------------------------------------

TOO_LONG = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "prompt is too long: 210000 tokens > 200000 maximum",
    },
}


def anthropic_message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 12},
    }


def anthropic_stream(text: str) -> list[tuple[str | None, Any]]:
    message = {
        **anthropic_message(""),
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 40, "output_tokens": 1},
    }
    return [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


async def test_a_provider_context_overflow_compacts_and_retries(wire: WireServer) -> None:
    model = AnthropicModel("claude-haiku-4-5", api_key="test-key", base_url=wire.url, retry_base_delay=0.001)
    store = MemorySessionStore()
    old: list[Message] = []
    for index in range(4):
        old += [
            UserMessage([TextPart(f"question {index}: " + "details " * 50)]),
            AssistantMessage([TextPart(f"answer {index}: " + "reasons " * 50)]),
        ]
    await store.append(SessionKey("writer", "default", "main"), old)
    events: list[Event] = []
    session = await start({"model": model}, events, store)
    assert len(session.history) == 8

    wire.json(TOO_LONG, status=400)  # the prompt does not fit, says the provider
    wire.json(anthropic_message("The user asked four questions; all answered."))  # the summary
    wire.sse(anthropic_stream("Here is the fifth answer."))  # the retry
    result = await session.prompt("question 4")

    assert result.text == "Here is the fifth answer."
    first, summarise, retry = (seen.json() for seen in wire.requests)
    assert len(first["messages"]) == 9
    assert "question 0" in json.dumps(summarise["messages"]) and "<conversation>" in json.dumps(summarise)
    assert "tools" not in summarise and "stream" not in summarise
    (message,) = retry["messages"]  # the summary, then the prompt being answered (one user turn on the wire)
    assert message["content"][0]["text"].startswith("<conversation_summary>\nThe user asked four")
    assert message["content"][1]["text"] == "question 4"
    (started,) = of(events, "compaction_start")
    assert started.data["reason"] == "overflow" and started.data["messages_summarised"] == 8
    assert of(events, "compaction_end")[0].data["tokens_after"] < started.data["tokens_before"]
    assert [text_of(m) for m in session.history][1:] == ["question 4", "Here is the fifth answer."]
    assert await store.load(session.key) == session.history
    assert result.usage.requests == 2 and result.usage.input_tokens == 30 + 40  # summary + answer


async def test_an_overflow_with_nothing_to_summarise_fails_without_looping() -> None:
    calls = 0

    def model(request: ModelRequest) -> str:
        nonlocal calls
        calls += 1
        raise ContextOverflowError("prompt is too long")

    session = await start({"model": FunctionModel(model)})
    with pytest.raises(ContextOverflowError, match="nothing older is left to summarise") as info:
        await session.prompt("one enormous message")
    assert calls == 1
    assert isinstance(info.value.__context__, ContextOverflowError)  # the provider's error, chained
    assert session.history == []


async def test_an_overflow_after_compacting_is_raised_not_retried_again() -> None:
    calls = 0

    def model(request: ModelRequest) -> str:
        nonlocal calls
        if is_summary_request(request):
            return "SUMMARY"
        calls += 1
        if calls > 2:
            raise ContextOverflowError("prompt is too long")
        return "ok"

    session = await start({"model": FunctionModel(model)})
    await session.prompt("one")
    await session.prompt("two")
    with pytest.raises(ContextOverflowError, match="prompt is too long"):
        await session.prompt("three")
    assert calls == 4  # the call, then one retry after compacting
    assert summary_of(session.history[0]) == "SUMMARY"


async def test_with_compaction_disabled_an_overflow_is_raised() -> None:
    def model(request: ModelRequest) -> str:
        raise ContextOverflowError("prompt is too long")

    session = await start({"model": FunctionModel(model), "compaction": False})
    with pytest.raises(ContextOverflowError, match=r"^prompt is too long$"):
        await session.prompt("hi")


# -- incremental summaries and restarts ------------------------------------------------------------


async def test_the_next_compaction_updates_the_previous_summary() -> None:
    model = Scripted()
    session = await start({"model": FunctionModel(model), "compaction": small(model)})
    index = 0
    while len(model.summary_requests) < 2 and index < 40:
        await session.prompt(prompt_text(f"M{index:02d}"))
        index += 1
    first, second = (text_of(r.messages[0]) for r in model.summary_requests)
    assert "<previous_summary>" not in first and "M00" in first
    assert "<previous_summary>\nSUMMARY-1\n</previous_summary>" in second
    # Only the messages since the first summary are sent again, never the raw old ones.
    first_markers = {f"M{i:02d}" for i in range(index) if f"M{i:02d}" in first}
    assert first_markers and not any(marker in second for marker in first_markers)
    assert "<conversation_summary>" not in second  # the summary message is not re-summarised
    assert summary_of(session.history[0]) == "SUMMARY-2"


async def test_the_summary_survives_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "pyflue.db"
    model = Scripted()
    session = await start({"model": FunctionModel(model)}, store=SQLiteSessionStore(path))
    for index in range(3):
        await session.prompt(f"fact {index}: the answer is {index * 7}")
    result = await session.compact(keep_recent=0)
    assert result.messages_summarised == 6 and result.summary == "SUMMARY-1"

    # A fresh process reads the compacted history from the file.
    script = (
        "import anyio, json\n"
        "from pyflue.stores.sqlite import SQLiteSessionStore\n"
        "from pyflue.stores.sessions import SessionKey\n"
        "from pyflue.models.messages import text_of\n"
        f"store = SQLiteSessionStore({str(path)!r})\n"
        "history = anyio.run(store.load, SessionKey('writer', 'default', 'main'))\n"
        "print(json.dumps([text_of(m) for m in history]))\n"
    )
    process = await anyio.run_process([sys.executable, "-c", script])
    texts = json.loads(process.stdout)
    assert len(texts) == 1 and texts[0].startswith(
        "<conversation_summary>\nSUMMARY-1\n</conversation_summary>"
    )

    # A new harness over a new store object picks the summary up and compacts incrementally.
    model2 = Scripted()
    session2 = await start({"model": FunctionModel(model2)}, store=SQLiteSessionStore(path))
    assert summary_of(session2.history[0]) == "SUMMARY-1"
    await session2.prompt("fact 3: the answer is 21")
    await session2.compact(keep_recent=0)
    (request,) = model2.summary_requests
    assert "<previous_summary>\nSUMMARY-1\n</previous_summary>" in text_of(request.messages[0])
    assert "fact 3" in text_of(request.messages[0]) and "fact 0" not in text_of(request.messages[0])


# -- manual compaction -----------------------------------------------------------------------------


async def test_compact_on_demand_with_caller_instructions() -> None:
    model = Scripted()
    events: list[Event] = []
    session = await start(
        {"model": FunctionModel(model), "compaction": {"instructions": "Keep every number."}}, events
    )
    for index in range(3):
        await session.prompt(f"step {index}: " + "detail " * 40)
    events.clear()
    result = await session.compact(keep_recent=0, instructions="Mention the user's name.")

    assert (result.reason, result.messages_summarised, result.summary) == ("manual", 6, "SUMMARY-1")
    assert result.tokens_after < result.tokens_before and result.usage == Usage(50, 20, requests=1)
    assert [e.type for e in events] == [
        "operation_start",
        "compaction_start",
        "model_start",
        "model_end",
        "compaction_end",
        "operation_end",
    ]
    assert events[0].data["kind"] == "compact" and events[1].data["reason"] == "manual"
    assert events[-1].data["status"] == "completed" and events[-1].data["usage"]["input_tokens"] == 50
    assert len({e.operation_id for e in events}) == 1
    request = text_of(model.summary_requests[0].messages[0])
    assert "Additional instructions: Keep every number." in request
    assert "Additional instructions: Mention the user's name." in request
    assert [summary_of(m) for m in session.history] == ["SUMMARY-1"]
    await session.prompt("next")
    assert [text_of(m)[:22] for m in model.requests[-1].messages] == ["<conversation_summary>", "next"]


async def test_compact_keeps_recent_messages_and_is_a_no_op_when_there_is_nothing() -> None:
    model = Scripted()
    events: list[Event] = []
    session = await start({"model": FunctionModel(model)}, events)
    empty = await session.compact()
    assert (empty.messages_summarised, empty.summary) == (0, None) and not of(events, "compaction_start")
    for index in range(4):
        await session.prompt(f"step {index}")
    before = session.history
    result = await session.compact(keep_recent=15)
    kept = session.history[1:]
    assert kept == before[-len(kept) :] and 0 < sum(estimate_tokens(m) for m in kept) <= 15
    assert result.messages_summarised == len(before) - len(kept)
    again = await session.compact(keep_recent=10_000)  # everything after the summary fits: nothing to do
    assert again.messages_summarised == 0 and again.summary == "SUMMARY-1"


async def test_aborting_a_compaction_leaves_the_history_unchanged() -> None:
    entered = anyio.Event()

    async def model(request: ModelRequest) -> str:
        if is_summary_request(request):
            entered.set()
            await anyio.sleep_forever()
        return "ok"

    events: list[Event] = []
    store = MemorySessionStore()
    session = await start({"model": FunctionModel(model)}, events, store)
    for index in range(3):
        await session.prompt(f"step {index}")
    before = session.history
    events.clear()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with pytest.raises(AbortedError):
                    await session.compact(keep_recent=0)

            tg.start_soon(run)
            await entered.wait()
            assert await session.abort("changed my mind")
    assert session.history == before and await store.load(session.key) == before
    assert [e.type for e in events][-3:] == ["compaction_end", "abort", "operation_end"]
    assert "error" in of(events, "compaction_end")[0].data
    assert events[-1].data["status"] == "aborted"


async def test_compact_from_inside_the_sessions_own_operation_is_refused() -> None:
    @define_tool
    async def squeeze(ctx: ToolContext) -> str:
        """Compact."""
        await ctx.session.compact()
        return "compacted"

    def model(request: ModelRequest) -> ModelResponse | str:
        last = request.messages[-1]
        if isinstance(last.parts[0], ToolResultPart):
            return last.parts[0].content
        return ModelResponse([ToolCallPart("c1", "squeeze", {})], Usage(requests=1), "tool_calls")

    session = await start({"model": FunctionModel(model), "tools": [squeeze]})
    with anyio.fail_after(5):
        result = await session.prompt("go")
    assert "cannot run inside this session's own operation" in result.text


async def test_a_subagent_inherits_the_parents_compaction() -> None:
    model = Scripted()
    helper = define_agent_profile(name="helper")
    session = await start({"model": FunctionModel(model), "subagents": [helper], "compaction": SMALL})
    with pytest.raises(ContextOverflowError, match="2000-token context window"):
        await session.task(prompt_text("HUGE", 20_000), agent="helper")


# -- where to cut: property-based ------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    """Histories as the loop writes them: prompts, tool rounds (results in any order), answers; the
    last operation may still be waiting for the model."""
    messages: list[Message] = []
    call_number = 0
    for _ in range(draw(st.integers(1, 5))):
        messages.append(UserMessage([TextPart("u" * draw(st.integers(0, 400)))]))
        for _ in range(draw(st.integers(0, 3))):
            count = draw(st.integers(1, 3))
            ids = [f"c{call_number + i}" for i in range(count)]
            call_number += count
            parts: list[Any] = []
            if draw(st.booleans()):
                parts.append(ThinkingPart("t" * draw(st.integers(0, 200))))
            parts += [ToolCallPart(i, "tool", {"x": "a" * draw(st.integers(0, 100))}) for i in ids]
            messages.append(AssistantMessage(parts))
            order = draw(st.permutations(ids))
            messages.append(
                UserMessage([ToolResultPart(i, "tool", "r" * draw(st.integers(0, 600))) for i in order])
            )
        if draw(st.booleans()) or _ == 0:
            messages.append(AssistantMessage([TextPart("a" * draw(st.integers(0, 300)))]))
    return messages


def _valid(messages: list[Message], cut: int) -> bool:
    before = {p.id for m in messages[:cut] for p in m.parts if isinstance(p, ToolCallPart)}
    after = {p.call_id for m in messages[cut:] for p in m.parts if isinstance(p, ToolResultPart)}
    return not (before & after)


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 1_000), st.integers(0, 3), st.integers(0, 2))
def test_a_cut_never_separates_a_tool_call_from_its_result(
    messages: list[Message], keep: int, start: int, trim: int
) -> None:
    start = min(start, len(messages))
    max_cut = max(0, len(messages) - trim)
    cut = find_cut(messages, start, keep, max_cut)
    candidates = [c for c in range(start + 1, max_cut + 1) if _valid(messages, c)]
    if sum(estimate_tokens(m) for m in messages[start:]) <= keep:
        assert cut is None  # everything already fits in ``keep``: nothing to summarise
        return
    if cut is None:
        assert candidates == []
        return
    assert start < cut <= max_cut and _valid(messages, cut)
    kept = messages[cut:]
    called = {p.id for m in kept for p in m.parts if isinstance(p, ToolCallPart)}
    assert all(p.call_id in called for m in kept for p in m.parts if isinstance(p, ToolResultPart))
    fitting = [c for c in candidates if sum(estimate_tokens(m) for m in messages[c:]) <= keep]
    # Keep as much as fits in ``keep``; when nothing fits, summarise as much as the pairs allow.
    assert cut == (fitting[0] if fitting else candidates[-1])


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(histories(), st.integers(0, 1_500))
def test_a_compacted_history_keeps_every_pair_and_the_newest_messages_verbatim(
    backend: str, messages: list[Message], keep: int
) -> None:
    async def scenario() -> None:
        store = MemorySessionStore()
        await store.append(SessionKey("writer", "default", "main"), messages)
        session = await start({"model": FunctionModel(lambda r: "S")}, store=store)
        result = await session.compact(keep_recent=keep)
        history = session.history
        if result.messages_summarised == 0:
            assert history == messages
            return
        assert summary_of(history[0]) in ("S", "(nothing of note)")  # the latter: only empty messages
        kept = history[1:]
        assert kept == messages[len(messages) - len(kept) :]
        assert result.messages_summarised == len(messages) - len(kept)
        assert_pairs_intact(kept)
        assert await store.load(session.key) == history

    anyio.run(scenario, backend=backend)
