"""Prompts an agent on a real provider."""

from pyflue import FlueContext


async def run(ctx: FlueContext) -> str:
    harness = await ctx.init("needs_key")
    session = await harness.session()
    return (await session.prompt("hi")).text
