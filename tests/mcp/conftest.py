"""A real MCP server (``server_app.py``) over stdio, and one over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = str(Path(__file__).with_name("server_app.py"))
TOKEN = "s3cret"


def stdio_spec(name: str = "calc", *extra: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "command": [sys.executable, SERVER, *extra], **keys}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The URL of a streamable-HTTP MCP server (uvicorn in a subprocess) that requires the header
    ``x-token: s3cret``."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port), "--require-header", f"x-token={TOKEN}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test MCP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)
