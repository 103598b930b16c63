"""One process of the SQLite store tests; prints one JSON line.

``fresh <dir> <rounds> <ready-file> <go-file>``: once ``<go-file>`` exists, open the session store of
``<dir>/fresh-<i>.db`` for each round (all processes race to create the same new files) and append
one message to a session named after this process.

``race <db> <turns> <ready-file> <go-file>``: take the turn lease of one shared session ``turns``
times, each time appending one message fenced by the version the lease returned, and report when
each turn held the lease.

``events <db> <run-id>``: the ids, types and seqs of a run's events, as this process reads them.

``readonly <db> <new-db>``: read everything of ``<db>`` (which the caller made read-only), then try
to write it and to create ``<new-db>`` beside it; report what happened.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from pyflue.errors import StoreError
from pyflue.models.messages import TextPart, UserMessage, text_of
from pyflue.stores.sessions import SessionKey
from pyflue.stores.sqlite import SQLiteRunStore, SQLiteSessionStore

KEY = SessionKey("agent", "instance", "shared")


def wait_for(ready: str, go: str) -> None:
    Path(ready).touch()
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)


async def fresh(folder: str, rounds: int) -> dict[str, Any]:
    for i in range(rounds):
        async with SQLiteSessionStore(Path(folder) / f"fresh-{i}.db") as store:
            await store.append(
                SessionKey("agent", "instance", f"p{os.getpid()}"), [UserMessage([TextPart("hi")])]
            )
    return {"ok": True}


async def race(db: str, turns: int) -> dict[str, Any]:
    owner = f"process-{os.getpid()}"
    held: list[tuple[float, float]] = []
    async with SQLiteSessionStore(db) as store:
        for turn in range(turns):
            delay = 0.001
            while (version := await store.acquire(KEY, owner, 30)) is None:
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.02)
            start = time.time()
            history = await store.load(KEY)
            assert history.version == version, (history.version, version)
            await anyio.sleep(0.002)  # the "model call"
            end = time.time()
            text = f"{owner} turn {turn} saw {len(history)}"
            await store.append(KEY, [UserMessage([TextPart(text)])], expected=version, release=owner)
            held.append((start, end))
    return {"owner": owner, "held": held}


async def events(db: str, run_id: str) -> dict[str, Any]:
    async with SQLiteRunStore(db) as store:
        log = await store.read_events(run_id)
        run = await store.get_run(run_id)
    assert run is not None
    return {"status": run.status, "events": [[e.event_id, e.type, e.seq, e.ts] for e in log]}


async def readonly(db: str, new_db: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with SQLiteSessionStore(db) as sessions, SQLiteRunStore(db) as runs:
        out["read_only"] = sessions.db.read_only
        history = await sessions.load(KEY)
        out["history"] = [text_of(m) for m in history]
        out["sessions"] = await sessions.list_sessions(KEY.agent, KEY.instance_id)
        page = await runs.list_runs()
        out["runs"] = [r.run_id for r in page]
        out["events"] = [e.type for r in page for e in await runs.read_events(r.run_id)]
        try:
            await sessions.append(KEY, [UserMessage([TextPart("more")])])
            out["write"] = "written"
        except StoreError as exc:
            out["write"] = str(exc)
    try:
        async with SQLiteSessionStore(new_db) as other:
            await other.append(KEY, [UserMessage([TextPart("new")])])
        out["create"] = "created"
    except StoreError as exc:
        out["create"] = str(exc)
    return out


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "fresh":
        folder, rounds, ready, go = args
        wait_for(ready, go)
        result = anyio.run(fresh, folder, int(rounds))
    elif command == "race":
        db, turns, ready, go = args
        wait_for(ready, go)
        result = anyio.run(race, db, int(turns))
    elif command == "events":
        result = anyio.run(events, *args)
    elif command == "readonly":
        result = anyio.run(readonly, *args)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
