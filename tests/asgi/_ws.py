"""Helpers for the WebSocket tests: a blocking client (``websockets.sync``) on a real server, the
project's extra agents, files the gated agent and workflow wait on, and a recorder of the events
the server emits (the server runs in a thread of this process)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

import pyflue
from pyflue import Event
from tests.asgi._live import FILES, make_project
from tests.core._workflow_helpers import write_project

#: Seconds a test waits for something the server must do before it gives up (a hang guard, never
#: a measurement).
PATIENCE = 60.0

EXTRA = {
    # 200 text deltas of 256 KiB each: far more than the socket buffers between server and client
    # hold when the client caps its receive buffer.
    "agents/flood.py": """\
        import anyio
        from pyflue import create_agent
        from pyflue.models.testing import FunctionModel

        CHUNK = "x" * 262144


        async def flood(request):
            for _ in range(200):
                await anyio.sleep(0)
                yield CHUNK


        default = create_agent(lambda ctx: {"model": FunctionModel(stream_function=flood)})
        """,
}


def make_ws_project(root: Path) -> Path:
    make_project(root)
    return write_project(root, EXTRA)


assert set(EXTRA).isdisjoint(FILES)


def ws_url(url: str, path: str) -> str:
    return "ws" + url.removeprefix("http") + path


class Client:
    """A WebSocket client speaking JSON; ``seen`` keeps every message received, in order."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.seen: list[dict[str, Any]] = []

    def send(self, message: Any) -> None:
        self.connection.send(json.dumps(message))

    def send_raw(self, frame: str | bytes) -> None:
        self.connection.send(frame)

    def recv(self) -> dict[str, Any]:
        message = json.loads(self.connection.recv(timeout=PATIENCE))
        assert isinstance(message, dict)
        self.seen.append(message)
        return message

    def until_done(self, *request_ids: str) -> dict[str, list[dict[str, Any]]]:
        """Read until each request has its ``result`` or ``error``; the messages of each."""
        pending = set(request_ids)
        out: dict[str, list[dict[str, Any]]] = {r: [] for r in request_ids}
        while pending:
            message = self.recv()
            request_id = message.get("request_id")
            if request_id in out:
                out[request_id].append(message)
                if message["type"] in ("result", "error"):
                    pending.discard(request_id)
        return out

    def next_of(self, request_id: str, type: str) -> dict[str, Any]:
        """Read until a message of ``type`` for ``request_id``."""
        while True:
            message = self.recv()
            if message.get("request_id") == request_id and message["type"] == type:
                return message

    def closed(self) -> int | None:
        """Read to the end; the close code the server sent."""
        try:
            while True:
                self.connection.recv(timeout=PATIENCE)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


@contextmanager
def client(url: str, path: str, **kwargs: Any) -> Iterator[Client]:
    with connect(ws_url(url, path), open_timeout=PATIENCE, **kwargs) as connection:
        yield Client(connection)


class StalledClient:
    """A client that reads nothing until asked (websockets' sans-I/O protocol on a plain socket
    with a small receive buffer), so the server's sends to it soon stall."""

    def __init__(self, url: str, path: str, receive_buffer: int = 4096) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(PATIENCE)
        self.sock.connect((host, int(port)))
        self.protocol = ClientProtocol(parse_uri(ws_url(url, path)), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is not State.OPEN:
            self._read()

    def send(self, message: Any) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def messages_then_close(self) -> tuple[list[dict[str, Any]], int | None]:
        """Read to the end: the messages, and the close code the server sent."""
        messages: list[dict[str, Any]] = []
        while self.protocol.close_rcvd is None:
            if not self._read():
                break
            for frame in self.protocol.events_received():
                if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT:
                    messages.append(json.loads(frame.data))
        code = self.protocol.close_rcvd.code if self.protocol.close_rcvd is not None else None
        self.sock.close()
        return messages, code

    def _read(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.protocol.receive_eof()
            return False
        self.protocol.receive_data(data)
        self._flush()
        return True

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def started(project: Path, k: int) -> None:
    wait_for((project / f"started-{k}").exists, f"gate call {k} to start")


def release(project: Path, k: int | str) -> None:
    (project / f"release-{k}").write_text("")


class Recorder:
    """Every event the process emits while it records (the server thread's included)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def find(self, check: Callable[[Event], bool]) -> list[Event]:
        with self._lock:
            return [e for e in self.events if check(e)]

    def wait(self, check: Callable[[Event], bool], what: str) -> Event:
        wait_for(lambda: bool(self.find(check)), what)
        return self.find(check)[0]


@contextmanager
def recording() -> Iterator[Recorder]:
    recorder = Recorder()
    pyflue.observe(recorder)
    try:
        yield recorder
    finally:
        pyflue.unobserve(recorder)


@contextmanager
def serve_on_trio(app: Any) -> Iterator[str]:
    """Serve ``app`` with hypercorn on trio (in a thread of its own) until the block ends."""
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "warning"
    ready = threading.Event()
    handles: dict[str, Any] = {}
    failure: list[BaseException] = []

    async def main() -> None:
        stop = trio.Event()
        handles["stop"], handles["token"] = stop, trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: hypercorn_serve(
                    app, config, shutdown_trigger=stop.wait, task_status=task_status
                )
            )
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(PATIENCE)
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        trio.from_thread.run_sync(handles["stop"].set, trio_token=handles["token"])
        thread.join(PATIENCE)
