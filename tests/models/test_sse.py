"""SSE parsing: the same events for any split of the byte stream, any line ending."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue.models.sse import SSEEvent, SSEParser, aiter_sse, parse_all
from tests.wire import WireServer

_name = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12)
_line = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)
_event = st.tuples(st.none() | _name, st.lists(_line, min_size=1, max_size=3))


def _encode(events: list[tuple[str | None, list[str]]], newline: str, comments: bool) -> bytes:
    out = []
    for name, lines in events:
        if comments:
            out.append(f": ping{newline}")
        if name:
            out.append(f"event: {name}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    return "".join(out).encode()


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_gives_the_same_events(events, newline, comments, cuts) -> None:
    data = _encode(events, newline, comments)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    expected = [SSEEvent(name or "message", "\n".join(lines)) for name, lines in events]
    assert parse_all(chunks) == expected
    assert parse_all([data]) == expected
    assert parse_all([bytes([b]) for b in data]) == expected


def test_multibyte_utf8_split_inside_a_character() -> None:
    data = "data: héllo ✓\n\n".encode()
    cut = data.index("✓".encode()) + 1
    assert parse_all([data[:cut], data[cut:]]) == [SSEEvent("message", "héllo ✓")]


def test_id_retry_and_field_without_space() -> None:
    assert parse_all([b"id: 7\nretry: 1500\ndata:x\n\n"]) == [SSEEvent("message", "x", "7", 1500)]


def test_event_without_data_is_not_dispatched() -> None:
    assert parse_all([b"event: ping\n\n: comment\n\n"]) == []


def test_unfinished_event_is_discarded_and_reported() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: done\n\ndata: half") == [SSEEvent("message", "done")]
    assert parser.close() == []
    assert parser.truncated
    clean = SSEParser()
    clean.feed(b"data: a\n\n: trailing comment\n")
    clean.close()
    assert not clean.truncated


def test_trailing_lone_cr_completes_the_event_at_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == []
    assert parser.close() == [SSEEvent("message", "a")]


async def test_parses_a_real_chunked_http_stream(wire: WireServer) -> None:
    wire.sse([("message_start", {"a": 1}), (None, "two\nlines")], split=3)
    async with httpx.AsyncClient() as client, client.stream("POST", wire.url + "/s") as response:
        events = [event async for event in aiter_sse(response.aiter_bytes())]
    assert events == [SSEEvent("message_start", '{"a": 1}'), SSEEvent("message", "two\nlines")]
