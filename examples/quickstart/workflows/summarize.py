"""Summarize a text with the assistant, then have its reviewer subagent check the summary.

Run it:  pyflue run summarize --payload '{"text": "..."}'
"""

from pydantic import BaseModel

from pyflue import FlueContext


class Payload(BaseModel):
    """The payload this workflow accepts; anything else is refused before the run starts."""

    text: str


async def run(ctx: FlueContext) -> dict[str, str]:
    text = ctx.payload["text"]  # the validated payload as JSON data (ctx.input is the Payload)
    ctx.log.info("summarizing", words=len(text.split()))

    # An instance of the project's `assistant` agent for this run; its events join the run's log.
    harness = await ctx.init("assistant")
    session = await harness.session()
    summary = await session.prompt(f"Summarize in one sentence:\n\n{text}")

    # Delegate to the reviewer profile: a fresh, isolated session nested under this one.
    review = await session.task(
        f"Check this summary against the text.\n\nSummary: {summary.text}\n\nText: {text}",
        agent="reviewer",
    )
    return {"summary": summary.text, "review": review.text}
