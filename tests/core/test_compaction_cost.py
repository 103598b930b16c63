"""The prompt-size estimate before each model call is incremental: with a model that reports no
usage, a session's Nth prompt estimates only the messages added since the last call, not the whole
history again (that made every turn O(history), the peers' quadratic-session mistake)."""

from __future__ import annotations

import pytest

import pyflue.compaction as compaction
from pyflue import init
from pyflue.models.testing import FunctionModel
from pyflue.stores.memory import MemorySessionStore


async def test_each_call_estimates_only_new_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []
    real = compaction.estimate_tokens

    def counting(message: object) -> int:
        counted.append(1)
        return real(message)  # type: ignore[arg-type]

    monkeypatch.setattr(compaction, "estimate_tokens", counting)
    harness = await init(model=FunctionModel(lambda request: "ok"), session_store=MemorySessionStore())
    session = await harness.session()
    per_prompt = []
    for _ in range(30):
        counted.clear()
        await session.prompt("hello")
        per_prompt.append(len(counted))
    assert len(session.history) == 60
    # The first prompt estimates its one message; every later one only its new messages (the
    # previous answer and the new prompt), however long the history has grown.
    assert max(per_prompt[1:]) <= 3, per_prompt
