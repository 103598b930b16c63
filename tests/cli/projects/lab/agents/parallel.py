"""An agent with two tools and a subagent that all wait on the test's gate file: the test model
calls every tool of an agent at once, so while the gate is closed both tools and the subagent's own
tool are running together."""

import os

import anyio

from pyflue import create_agent, define_agent_profile, define_tool


async def _gate() -> str:
    gate = anyio.Path(os.environ["PYFLUE_TEST_GATE"])
    while not await gate.exists():  # noqa: ASYNC110 - polling a file another process creates
        await anyio.sleep(0.02)
    return "open"


@define_tool
async def first_wait() -> str:
    """Wait for the gate."""
    return await _gate()


@define_tool
async def second_wait() -> str:
    """Wait for the gate too."""
    return await _gate()


@define_tool
async def helper_wait() -> str:
    """The helper's own wait for the gate."""
    return await _gate()


helper = define_agent_profile(
    {"name": "helper", "description": "Waits for the gate.", "instructions": "Wait.", "tools": [helper_wait]}
)

default = create_agent(
    lambda ctx: {"model": "test", "tools": [first_wait, second_wait], "subagents": [helper]}
)
