"""Prompts the parallel agent: two tools and a subagent task run at the same time."""

from pyflue import FlueContext


async def run(ctx: FlueContext) -> str:
    harness = await ctx.init("parallel")
    session = await harness.session()
    return (await session.prompt("wait for the gate")).text
