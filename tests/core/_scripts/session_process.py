"""One process of the restart tests: ``python session_process.py <db> <backend> <instance> <session>
<prompt>...``.

Opens the SQLite session store at ``<db>``, prints the history it finds as one JSON line
(``{"before": [...]}``), then sends each ``<prompt>`` to the session (a FunctionModel that calls a
tool once per prompt, then answers ``"<prompt>: <n> messages seen"``) and prints the history again
(``{"after": [...]}``). Histories are printed in their stored JSON form.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

from pyflue import define_tool, init
from pyflue.models.base import ModelRequest, ModelResponse, Usage
from pyflue.models.messages import ToolCallPart, ToolResultPart, UserMessage, messages_to_json, text_of
from pyflue.models.testing import FunctionModel
from pyflue.stores.sqlite import SQLiteSessionStore


@define_tool
def note(text: str) -> str:
    """Write a note."""
    return f"noted {text}"


def respond(request: ModelRequest) -> ModelResponse | str:
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    if isinstance(last.parts[0], ToolResultPart):
        prompt = text_of(request.messages[-3])
        return f"{prompt}: {len(request.messages)} messages seen"
    return ModelResponse(
        [ToolCallPart(f"call-{len(request.messages)}", "note", {"text": text_of(last)})],
        Usage(requests=1),
        "tool_calls",
    )


def dump(history: list[Any]) -> Any:
    return json.loads(messages_to_json(history))


async def main(db: str, instance: str, session_id: str, prompts: list[str]) -> None:
    harness = await init(
        model=FunctionModel(respond),
        tools=[note],
        id=instance,
        name="restart",
        session_store=SQLiteSessionStore(db),
    )
    session = await harness.session(session_id)
    print(json.dumps({"before": dump(session.history)}), flush=True)
    for prompt in prompts:
        await session.prompt(prompt)
    print(json.dumps({"after": dump(session.history)}), flush=True)


if __name__ == "__main__":
    db, backend, instance, session_id, *prompts = sys.argv[1:]
    anyio.run(main, db, instance, session_id, prompts, backend=backend)
