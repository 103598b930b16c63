"""A workflow whose payload is validated."""

from pydantic import BaseModel

from pyflue import FlueContext


class Payload(BaseModel):
    count: int


async def run(ctx: FlueContext) -> dict[str, int]:
    return {"double": ctx.input.count * 2}
