"""``pyflue serve``: a real server process, its announcement, the token, the loopback rule, and a
graceful stop on SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCRIPT = """
import argparse, sys
from pyflue_cli.commands.serve import run
from pyflue_cli.main import report
args = argparse.Namespace(path=sys.argv[1], project=None, host=sys.argv[2], port=int(sys.argv[3]),
                          reload=False, workers=1, insecure=False, verbose=False)
try:
    sys.exit(run(args))
except Exception as exc:
    sys.exit(report(exc, verbose=False))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(project: Path, host: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(project), host, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("pyflue serve did not come up")


def test_serve_announces_serves_and_stops_on_ctrl_c(project: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(project, "127.0.0.1", port, {"PYFLUE_API_TOKEN": "tok1, tok2"})
    try:
        _wait_healthy(url, process)
        assert httpx.get(url + "/agents").status_code == 401
        done = httpx.post(
            url + "/workflows/hello?wait=result", json={"name": "S"}, headers={"Authorization": "Bearer tok2"}
        )
        assert done.json()["result"] == {"greeting": "hello S"}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"serving {project.resolve()} at {url}" in out
    assert "POST  /workflows/{name}" in out
    assert "GET   /runs/{run_id}/stream" in out
    assert "Ctrl-C stops the server" in out


def test_serve_refuses_a_public_host_without_a_token(project: Path) -> None:
    process = _start(project, "0.0.0.0", _free_port(), {"PYFLUE_API_TOKEN": ""})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in err
    assert "PYFLUE_API_TOKEN" in err and "--insecure" in err
    assert out == ""
