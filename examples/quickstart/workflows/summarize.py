"""Summarize a text in a few sentences."""

from pydantic import BaseModel

from pyflue import FlueContext, create_agent


# Optional: when a workflow defines `Payload`, every run's payload is validated against it first
# (an invalid payload is refused before a run exists). `ctx.payload` stays a plain dict.
class Payload(BaseModel):
    text: str


agent = create_agent(lambda ctx: {"model": "anthropic/claude-haiku-4-5"})


async def run(ctx: FlueContext) -> dict:
    ctx.log.info("started")
    harness = await ctx.init(agent)
    session = await harness.session()
    res = await session.prompt(f"Summarize: {ctx.payload['text']}")
    return {"summary": res.text}
