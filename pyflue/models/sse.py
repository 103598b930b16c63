"""Incremental Server-Sent Events parsing (the WHATWG ``text/event-stream`` format).

Bytes in, events out, robust to chunk boundaries anywhere (inside a field name, between ``\\r`` and
``\\n``, inside a multi-byte UTF-8 character), to comments, and to CRLF / CR / LF line endings. Event
boundaries are found with ``bytes.find`` on whole chunks, not per character, which is what makes it
fast enough for provider streams.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import NamedTuple

__all__ = ["SSEEvent", "SSEParser", "aiter_sse"]


class SSEEvent(NamedTuple):
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed byte chunks, get complete events. ``close()`` reports whether bytes of an unfinished
    event were left over (a stream cut mid-event)."""

    __slots__ = ("_chunks", "_pending_cr", "_tail", "truncated")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._tail = b""  # the last byte buffered, to find a boundary that spans two chunks
        self._pending_cr = False
        self.truncated = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):  # may be the first half of a CRLF split across chunks
                chunk = chunk[:-1]
                self._pending_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            return []
        if b"\n\n" not in chunk and not (self._tail == b"\n" and chunk[0] == 10):
            self._chunks.append(chunk)
            self._tail = chunk[-1:]
            return []
        self._chunks.append(chunk)
        buffer = b"".join(self._chunks)
        end = buffer.rfind(b"\n\n")
        rest = buffer[end + 2 :]
        self._chunks = [rest] if rest else []
        self._tail = rest[-1:]
        return _parse_region(buffer, end + 2)

    def close(self) -> list[SSEEvent]:
        """End of stream: the events a final lone ``\\r`` completes. Sets ``truncated`` when bytes of
        an unfinished event are left over (a stream cut mid-event); the spec says to discard them."""
        events: list[SSEEvent] = []
        if self._pending_cr:
            self._pending_cr = False
            events = self.feed(b"\n")
        leftover = b"".join(self._chunks)
        self._chunks = []
        self.truncated = any(line and line[0] != 58 for line in leftover.split(b"\n"))
        return events


# What providers send, one event at a time: "event: NAME\ndata: ONE LINE\n\n".
_SIMPLE = re.compile(rb"event: ([^\n]*)\ndata: ([^\n]*)\n\n")
_names: dict[bytes, str] = {}
_new = tuple.__new__  # builds an SSEEvent in C, skipping the named tuple's Python-level __new__


def _parse_region(buffer: bytes, end: int) -> list[SSEEvent]:
    """The events of ``buffer[:end]``, which ends at an event boundary. The common shape is matched
    in C, anchored at each block's start; any other block goes through the full field parser."""
    events: list[SSEEvent] = []
    append = events.append
    match = _SIMPLE.match
    pos = 0
    while pos < end:
        found = match(buffer, pos, end)
        if found is not None:
            raw_name, data = found.groups()
            name = _names.get(raw_name)
            if name is None:
                name = raw_name.decode("utf-8", "replace")
                if len(_names) < 256:
                    _names[raw_name] = name
            append(_new(SSEEvent, (name, data.decode("utf-8", "replace"), None, None)))
            pos = found.end()
            continue
        boundary = buffer.find(b"\n\n", pos, end)
        if boundary < 0:
            boundary = end
        event = _parse_block(buffer[pos:boundary])
        if event is not None:
            append(event)
        pos = boundary + 2
    return events


def _parse_block(block: bytes) -> SSEEvent | None:
    event = "message"
    data: list[bytes] = []
    event_id: str | None = None
    retry: int | None = None
    for line in block.split(b"\n"):
        if not line or line[0] == 58:  # empty, or ":" comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id":
            event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            retry = int(value)
    if not data:
        return None
    return SSEEvent(event, b"\n".join(data).decode("utf-8", "replace"), event_id, retry)


def parse_all(chunks: Iterable[bytes]) -> list[SSEEvent]:
    """Every event in a finite sequence of chunks (tests, benchmarks)."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


async def aiter_sse(chunks: AsyncIterable[bytes], parser: SSEParser | None = None) -> AsyncIterator[SSEEvent]:
    parser = parser or SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.close():
        yield event
