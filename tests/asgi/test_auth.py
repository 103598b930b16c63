"""Bearer tokens or an async callable; constant-time compare; /health stays open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from pyflue_asgi import create_app
from tests.asgi._live import serve


def _refused(reply: httpx.Response) -> None:
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json()["error"]["type"] == "Unauthorized"


def test_tokens(project: Path) -> None:
    with serve(create_app(project, auth=["first", "second"])) as url, httpx.Client(base_url=url) as client:
        assert client.get("/health").status_code == 200
        _refused(client.get("/agents"))
        _refused(client.get("/agents", headers={"Authorization": "Bearer wrong"}))
        _refused(client.get("/agents", headers={"Authorization": "Basic Zmlyc3Q="}))
        _refused(client.get("/nowhere"))  # no route disclosed without a token
        _refused(client.get("/openapi.json"))
        for token in ("first", "second"):
            assert client.get("/agents", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        document = client.get("/openapi.json", headers={"Authorization": "Bearer first"}).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []


def test_callable(project: Path) -> None:
    seen: list[str] = []

    async def check(headers: Headers) -> bool:
        seen.append(headers.get("x-api-key", ""))
        return headers.get("x-api-key") == "k"

    with serve(create_app(project, auth=check)) as url, httpx.Client(base_url=url) as client:
        _refused(client.get("/runs"))
        assert client.get("/runs", headers={"x-api-key": "k"}).status_code == 200
    assert seen == ["", "k"]


@pytest.mark.parametrize("auth", ["", [], ["ok", ""]])
def test_empty_tokens_are_refused(project: Path, auth: object) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        create_app(project, auth=auth)  # type: ignore[arg-type]


def test_a_sync_callable_is_refused(project: Path) -> None:
    with pytest.raises(TypeError, match="async def"):
        create_app(project, auth=lambda headers: True)  # type: ignore[arg-type,return-value]
