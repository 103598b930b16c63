"""Helpers to look at exported spans as a tree, and to build events by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from pyflue.events import Event

Tree = list[tuple[str, str, "Tree"]]


def tree(spans: Sequence[ReadableSpan]) -> Tree:
    """``[(name, kind, children)]`` from the roots down, siblings in start order (then name)."""
    ids = {span.context.span_id for span in spans if span.context is not None}

    def below(parent: int | None) -> Tree:
        kids = [
            s
            for s in spans
            if (s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None) == parent
        ]
        kids.sort(key=lambda s: (s.start_time or 0, s.name))
        return [(s.name, s.kind.name, below(s.context.span_id if s.context else None)) for s in kids]

    return below(None)


def unordered(value: Tree) -> Tree:
    """``value`` with siblings sorted by name and subtree: for trees whose siblings ran concurrently
    (tool calls start in whatever order the event loop schedules them; trio varies it)."""
    return sorted(((name, kind, unordered(children)) for name, kind, children in value), key=repr)


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for candidate in spans:
        if candidate.context is not None and candidate.context.span_id == span.parent.span_id:
            return candidate
    return None


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def is_error(span: ReadableSpan) -> bool:
    return span.status.status_code.name == "ERROR"


def one_trace(spans: Sequence[ReadableSpan]) -> bool:
    return len({s.context.trace_id for s in spans if s.context is not None}) == 1


class Events:
    """Builds events as the core emits them, with explicit timestamps (seconds)."""

    def __init__(self, run_id: str | None = None, agent: str = "agent", instance_id: str = "i1") -> None:
        self.run_id = run_id
        self.agent = agent
        self.instance_id = instance_id
        self.seq = 0

    def __call__(
        self,
        type: str,
        ts: float,
        data: dict[str, Any] | None = None,
        *,
        op: str | None = None,
        session: str | None = "s1",
        parent: str | None = None,
        agent: str | None = None,
    ) -> Event:
        self.seq += 1
        return Event(
            type,
            data or {},
            self.seq,
            self.run_id,
            agent or self.agent,
            self.instance_id if op is not None else None,
            session if op is not None else None,
            op,
            parent,
            ts=ts,
        )


def FRESH() -> dict[str, Any]:
    """``init`` keywords for a fresh session store, so histories (and call ids) never leak between tests."""
    from pyflue.stores.memory import MemorySessionStore

    return {"session_store": MemorySessionStore()}
