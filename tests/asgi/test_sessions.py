"""Prompts to one busy session: queued by default, 409 with multitask=reject, the running one
aborted with multitask=interrupt; never a 500, never interleaved. The `gated` agent's tool holds
each operation until the test writes its `release-k` file."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from pyflue_asgi import create_app
from tests.asgi._live import serve, sse


async def _started(project: Path, k: int) -> None:
    while not await anyio.Path(project / f"started-{k}").exists():  # noqa: ASYNC110 - the server thread writes it
        await anyio.sleep(0.01)


async def _ended(project: Path, k: int) -> None:
    log = anyio.Path(project / "gate.log")
    while not (await log.exists() and f"end {k}\n" in await log.read_text()):  # noqa: ASYNC110 - as above
        await anyio.sleep(0.01)


async def _release(project: Path, k: int) -> None:
    await anyio.Path(project / f"release-{k}").write_text("")


async def test_queue_reject_interrupt(project: Path) -> None:
    with serve(create_app(project)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            replies: dict[str, httpx.Response] = {}

            async def send(tag: str, query: str = "") -> None:
                session = "other" if tag == "other" else "default"
                replies[tag] = await client.post(
                    f"/agents/gated/i1{query}", json={"message": tag, "session": session}
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(send, "first")
                await _started(project, 0)
                # queued: waits behind the first, never interleaved with it
                tg.start_soon(send, "second")
                rejected = await client.post("/agents/gated/i1?multitask=reject", json={"message": "no"})
                assert rejected.status_code == 409
                assert rejected.json()["error"]["type"] == "SessionBusy"
                # another session of the same instance is not busy: its prompt runs now (call 1)
                tg.start_soon(send, "other", "?multitask=reject")
                await _started(project, 1)
                await _release(project, 1)
                await _ended(project, 1)
                await _release(project, 0)
                await _started(project, 2)  # the queued prompt runs once the first has ended
                await _release(project, 2)
            assert [replies[t].status_code for t in ("first", "second", "other")] == [200, 200, 200]
            assert (project / "gate.log").read_text().split() == ["end", "1", "end", "0", "end", "2"]

            async with anyio.create_task_group() as tg:
                tg.start_soon(send, "third")
                await _started(project, 3)
                tg.start_soon(send, "fourth", "?multitask=interrupt")
                await _started(project, 4)
                await _release(project, 4)
            aborted = replies["third"]
            assert aborted.status_code == 409
            assert aborted.json()["error"]["type"] == "AbortedError"
            assert replies["fourth"].status_code == 200


async def test_abort_route_stops_the_running_prompt(project: Path) -> None:
    with serve(create_app(project)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            streamed: list[httpx.Response] = []

            async def stream() -> None:
                streamed.append(
                    await client.post(
                        "/agents/gated/i2",
                        json={"message": "go", "session": "s"},
                        headers={"Accept": "text/event-stream"},
                    )
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(stream)
                await _started(project, 0)
                wrong = await client.post("/agents/gated/i2/abort", params={"session": "default"})
                assert wrong.json() == {"aborted": False, "session": "default"}
                right = await client.post("/agents/gated/i2/abort", params={"session": "s"})
                assert right.json() == {"aborted": True, "session": "s"}
    messages = [m for m in sse(streamed[0].text) if "event" in m]
    assert "abort" in [m["event"] for m in messages]
    assert messages[-1]["event"] == "error"
    assert messages[-1]["data"]["error"]["type"] == "AbortedError"
