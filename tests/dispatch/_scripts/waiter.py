"""Waits for one dispatch from another process: ``python waiter.py PROJECT DISPATCH_ID``.

Prints ``waiting`` once it has read the (unfinished) record, then the finished record as JSON.
"""

from __future__ import annotations

import sys

import anyio

from pyflue import Runtime, get_dispatch, wait_dispatch


async def main(project: str, dispatch_id: str) -> None:
    async with Runtime():
        before = await get_dispatch(dispatch_id, project=project)
        print(f"waiting {before.status}", flush=True)
        record = await wait_dispatch(dispatch_id, timeout=60, project=project)
        print(record.model_dump_json(), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
