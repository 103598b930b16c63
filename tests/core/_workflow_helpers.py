"""Shared pieces of the workflow, run and project tests: project files written to tmp dirs."""

from __future__ import annotations

import textwrap
from pathlib import Path

# The seed workflow, verbatim: it must run unchanged.
SEED = """\
# workflows/summarize.py
from pyflue import create_agent, FlueContext

agent = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"})

async def run(ctx: FlueContext) -> dict:
    ctx.log.info("started")
    harness = await ctx.init(agent)
    session = await harness.session()
    res = await session.prompt(f"Summarize: {ctx.payload['text']}")
    return {"summary": res.text}
"""

# A workflow whose agent calls a tool on every prompt (TestModel calls every tool once), for logs
# with operation, model and tool events; `rounds` prompts, each tool call sleeping `nap` seconds.
TICKING = '''\
"""Prompts an agent with a slow tool a few times."""
import anyio
from pyflue import create_agent, define_tool

@define_tool
async def tick() -> str:
    """Wait a moment."""
    await anyio.sleep(NAP)
    return "tock"

NAP = 0.05
agent = create_agent(lambda ctx: {"model": "test", "tools": [tick]})

async def run(ctx):
    harness = await ctx.init(agent)
    session = await harness.session()
    for i in range(ctx.payload.get("rounds", 3)):
        ctx.log.info("round", i=i)
        await session.prompt(f"round {i}")
    return {"rounds": ctx.payload.get("rounds", 3)}
'''

# A workflow stuck in a tool until cancelled.
STUCK = '''\
import anyio
from pyflue import create_agent, define_tool

@define_tool
async def wait_forever() -> str:
    """Never returns."""
    await anyio.sleep(3600)
    return "never"

agent = create_agent(lambda ctx: {"model": "test", "tools": [wait_forever]})

async def run(ctx):
    ctx.log.info("waiting")
    harness = await ctx.init(agent)
    session = await harness.session()
    await session.prompt("wait")
    return {"done": True}
'''


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: source}`` under ``root`` (dedented) and return ``root``."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root
