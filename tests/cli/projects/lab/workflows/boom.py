"""A workflow that fails."""

from pyflue import FlueContext


async def run(ctx: FlueContext) -> None:
    ctx.log.info("about to fail")
    raise RuntimeError("boom")
