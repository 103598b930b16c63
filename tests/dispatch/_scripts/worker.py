"""A dispatch worker process for the crash tests: ``python worker.py PROJECT [options]``.

Runs ``Dispatcher(PROJECT, lease_seconds=..., ...)`` until it is killed, or with ``--until-idle``
until the project has no queued or running dispatch left. It prints ``ready <worker name>`` once
its dispatcher is open, so a test can tell which attempts are its own.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from pyflue import Dispatcher, Runtime, list_dispatches


async def _idle(project: str) -> bool:
    for status in ("queued", "running"):
        if len(await list_dispatches(status=status, limit=1, project=project)):
            return False
    return True


async def main(args: argparse.Namespace) -> None:
    async with (
        Runtime(session_lease_seconds=1.0),
        Dispatcher(
            args.project,
            concurrency=args.concurrency,
            lease_seconds=args.lease,
            poll_interval=args.poll,
            backoff=0.05,
            grace_period=0.5,
        ) as worker,
    ):
        print(f"ready {worker.worker}", flush=True)
        while not (args.until_idle and await _idle(args.project)):
            await worker.store.wait_changed(0.2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--until-idle", action="store_true")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    arguments = parser.parse_args()
    anyio.run(main, arguments, backend=arguments.backend)
    sys.exit(0)
