"""The local dashboard: static HTML, CSS and JavaScript modules under ``/ui``, no build step.

:class:`DashboardApp` serves the files of ``static/`` (shipped in the wheel) and nothing else: a
request names a file of a fixed list, never a path on disk. The pages hold no data — every run,
agent and dispatch is read by the browser from the API with the user's bearer token — so the files
are served without authentication, which lets a browser load them before it has asked for the token.
Every answer carries a Content-Security-Policy that allows only this origin's scripts, styles and
connections: nothing is fetched from elsewhere, and no inline script runs even if text slipped in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

__all__ = ["PREFIX", "DashboardApp"]

#: Where the dashboard lives below the app's mount point.
PREFIX = "/ui"

_STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _File(NamedTuple):
    body: bytes
    media_type: str
    etag: str


class DashboardApp:
    """An ASGI app answering ``GET``/``HEAD`` below :data:`PREFIX`; :meth:`claims` says whether a
    request is one of its paths (the API app hands those over before its auth check)."""

    def __init__(self, root: Path = _STATIC) -> None:
        self._root = root
        self._files: dict[str, _File] | None = None  # read on first use, in a worker thread

    @staticmethod
    def claims(scope: Scope) -> bool:
        if scope["type"] != "http":
            return False
        path = _below_mount(scope)
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer(scope)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response:
        path = _below_mount(scope)
        if path == PREFIX:  # pages resolve their modules relative to the trailing slash
            root = scope.get("root_path", "")
            return RedirectResponse(f"{root}{PREFIX}/", status_code=308, headers=_HEADERS)
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("method not allowed", 405, headers={**_HEADERS, "Allow": "GET, HEAD"})
        name = path[len(PREFIX) + 1 :] or "index.html"
        files = await self._load()
        found = files.get(name)
        if found is None:
            return PlainTextResponse("not found", 404, headers=_HEADERS)
        headers = {**_HEADERS, "ETag": found.etag}
        if Headers(scope=scope).get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        body = found.body if scope["method"] == "GET" else b""
        response = Response(body, media_type=found.media_type, headers=headers)
        response.headers["Content-Length"] = str(len(found.body))
        return response

    async def _load(self) -> dict[str, _File]:
        if self._files is None:
            self._files = await anyio.to_thread.run_sync(_read_tree, self._root)
        return self._files


def _read_tree(root: Path) -> dict[str, _File]:
    """Every servable file below ``root`` by its ``/``-separated relative name."""
    files: dict[str, _File] = {}
    for file in sorted(root.rglob("*")):
        media_type = _TYPES.get(file.suffix)
        if media_type is None or not file.is_file():
            continue
        body = file.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        files[file.relative_to(root).as_posix()] = _File(body, media_type, etag)
    return files


def _below_mount(scope: Scope) -> str:
    """The request path below the app's mount point."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
