"""Logs, then prompts the gatekeeper, whose tool waits for the test's gate file."""

from typing import Any

from pyflue import FlueContext


async def run(ctx: FlueContext) -> dict[str, Any]:
    ctx.log.info("waiting for the gate")
    harness = await ctx.init("gatekeeper")
    session = await harness.session()
    result = await session.prompt("open the gate")
    ctx.log.info("through the gate")
    return {"answer": result.text}
