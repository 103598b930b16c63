"""An agent whose tool waits until the test opens a gate: a run slow enough to follow or interrupt,
with no timed assertion anywhere (the test decides when it goes on by creating a file)."""

import os

import anyio

from pyflue import create_agent, define_tool


@define_tool
async def wait_for_gate() -> str:
    """Wait until the file named by $PYFLUE_TEST_GATE exists."""
    gate = anyio.Path(os.environ["PYFLUE_TEST_GATE"])
    while not await gate.exists():  # noqa: ASYNC110 - polling a file another process creates
        await anyio.sleep(0.02)
    return "open"


default = create_agent(lambda ctx: {"model": "test", "tools": [wait_for_gate]})
