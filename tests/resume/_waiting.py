"""A workflow that blocks until a file exists, for the shutdown tests: its first step notes each
call in ``<dir>/steps`` (so a resumed run can be seen not to call it again), then it writes
``<dir>/waiting`` and waits for ``<dir>/gate``, whose text joins its result."""

from __future__ import annotations

WAITING = """\
import pathlib

import anyio

resumable = RESUMABLE


def first(directory, n):
    with open(directory / "steps", "a") as f:
        f.write("first\\n")
    return n + 1


async def run(ctx):
    directory = pathlib.Path(ctx.payload["dir"])
    n = await ctx.step("first", lambda: first(directory, ctx.payload["n"]))
    (directory / "waiting").write_text(ctx.run_id)
    gate = directory / "gate"
    while not await anyio.to_thread.run_sync(gate.exists):
        await anyio.sleep(0.02)
    return {"n": n, "gate": gate.read_text()}
"""


def waiting(resumable: bool = True) -> str:
    """The workflow's source, resumable or not."""
    return WAITING.replace("RESUMABLE", str(resumable))
