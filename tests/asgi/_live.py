"""A real ASGI server on 127.0.0.1 in a thread of its own (its own event loop), for tests driven by
httpx from any backend. Bound to a socket the test opened on a free port, so no port races."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.core._workflow_helpers import write_project

# A tool that blocks until the test says so: call k writes `started-k` into the project directory,
# then waits for `release-k`. Tests thereby hold an operation in flight without timing.
GATE = '''\
import anyio
from pathlib import Path
from pyflue import create_agent, define_tool

ROOT = Path(__file__).resolve().parent.parent

@define_tool
async def gate() -> str:
    """Wait for the test."""
    k = len(list(ROOT.glob("started-*")))
    await anyio.Path(ROOT / f"started-{k}").write_text("")
    while not await anyio.Path(ROOT / f"release-{k}").exists():
        await anyio.sleep(0.01)
    log = ROOT / "gate.log"
    await anyio.Path(log).write_text((log.read_text() if log.exists() else "") + f"end {k}\\n")
    return f"released {k}"

default = create_agent(lambda ctx: {"model": "test", "tools": [gate]})
'''

FILES = {
    "agents/echo.py": '''\
        """Answers offline."""
        from pyflue import create_agent

        default = create_agent(lambda ctx: {"model": "test"})
        ''',
    "agents/gated.py": GATE,
    "workflows/hello.py": '''\
        """Greets someone."""
        from pydantic import BaseModel

        class Payload(BaseModel):
            name: str
            times: int = 1

        async def run(ctx):
            return {"greeting": " ".join(["hello " + ctx.payload["name"]] * ctx.payload["times"])}
        ''',
    "workflows/chatty.py": '''\
        """Logs `count` lines, waiting for `release-run` first when `wait` is set."""
        import anyio
        from pathlib import Path

        ROOT = Path(__file__).resolve().parent.parent

        async def run(ctx):
            count = ctx.payload.get("count", 10)
            for i in range(count // 2):
                ctx.log.info("line", i=i)
            while ctx.payload.get("wait") and not await anyio.Path(ROOT / "release-run").exists():
                await anyio.sleep(0.01)
            for i in range(count // 2, count):
                ctx.log.info("line", i=i)
            return {"count": count}
        ''',
    "workflows/boom.py": """\
        async def run(ctx):
            raise ValueError("secret internal detail")
        """,
    "workflows/stuck.py": """\
        import anyio

        async def run(ctx):
            ctx.log.info("waiting")
            await anyio.sleep(3600)
        """,
}


def make_project(root: Path) -> Path:
    return write_project(root, FILES)


class LiveServer:
    """``with LiveServer(app) as url:`` serves ``app`` until the block ends."""

    def __init__(self, app: Any, *, server: str = "uvicorn") -> None:
        self.app = app
        self.kind = server
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop: Any = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._error: BaseException | None = None

    def _serve(self) -> None:
        try:
            if self.kind == "uvicorn":
                config = uvicorn.Config(
                    self.app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5
                )
                server = uvicorn.Server(config)
                self._stop = server
                server.run(sockets=[self.sock])
            else:
                asyncio.run(self._hypercorn())
        except BaseException as exc:  # reported by __enter__ / __exit__
            self._error = exc

    async def _hypercorn(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.loglevel = "warning"
        self.sock.close()  # hypercorn binds by address; the port stays ours in the meantime
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._stop = lambda: loop.call_soon_threadsafe(stop.set)
        await serve(self.app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code < 500:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc: object) -> None:
        if isinstance(self._stop, uvicorn.Server):
            self._stop.should_exit = True
        elif self._stop is not None:
            self._stop()
        self._thread.join(30)
        self.sock.close()


@contextmanager
def serve(app: Any, *, server: str = "uvicorn") -> Iterator[str]:
    with LiveServer(app, server=server) as url:
        yield url


def sse(text: str) -> list[dict[str, Any]]:
    """Parse an SSE body into messages ``{id?, event?, data?}`` and ``{comment}``."""
    import json

    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        message: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                message["comment"] = line[1:].strip()
            else:
                key, _, value = line.partition(": ")
                message[key] = json.loads(value) if key == "data" else value
        out.append(message)
    return out
