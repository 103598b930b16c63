"""Says hello."""

from pyflue import FlueContext


async def run(ctx: FlueContext) -> str:
    return "hello"
