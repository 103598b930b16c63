"""How the dashboard's files are served: only under /ui, only the shipped files, with a policy that
allows nothing from elsewhere, before authentication (they hold no data) — and not at all unless
asked for. Against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from pyflue_asgi import create_app, ui
from tests.asgi._live import serve

STATIC = Path(ui.__file__).resolve().parent / "static"
#: Ways a script could turn text into markup or code.
SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")


def test_files_are_served_with_their_types_and_a_strict_policy(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        slash = client.get("/ui")
        assert slash.status_code == 308 and slash.headers["location"] == "/ui/"
        index = client.get("/ui/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="js/main.js">' in index.text
        policy = index.headers["content-security-policy"]
        for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "style-src 'self'"):
            assert rule in policy
        assert index.headers["x-content-type-options"] == "nosniff"
        module = client.get("/ui/js/main.js")
        assert module.headers["content-type"].startswith("text/javascript")
        assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")
        again = client.get("/ui/js/main.js", headers={"if-none-match": module.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        head = client.head("/ui/style.css")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 100


def test_only_shipped_files_are_served(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for path in ("/ui/nope.js", "/ui/%2e%2e/app.py", "/ui/__init__.py", "/ui/js", "/ui/js/"):
            assert client.get(path).status_code == 404, path
        assert client.post("/ui/js/main.js").status_code == 405


def test_every_shipped_file_is_reachable(url: str) -> None:
    names = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
    assert "index.html" in names and "js/main.js" in names
    with httpx.Client(base_url=url) as client:
        for name in names:
            assert client.get(f"/ui/{name}").status_code == 200, name


def test_files_need_no_token_but_the_api_does(project: Path) -> None:
    with serve(create_app(project, ui=True, auth="s3cret")) as url, httpx.Client(base_url=url) as client:
        assert client.get("/ui/").status_code == 200
        assert client.get("/ui/js/api.js").status_code == 200
        assert client.get("/runs").status_code == 401
        assert client.get("/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_no_dashboard_unless_asked(project: Path) -> None:
    with serve(create_app(project)) as url:
        assert httpx.get(url + "/ui/").status_code == 404


def test_mounted_under_a_prefix(project: Path) -> None:
    api = create_app(project, ui=True)
    host = Starlette(routes=[Mount("/ai", app=api)], lifespan=api.lifespan)
    with serve(host) as url, httpx.Client(base_url=url) as client:
        assert client.get("/ai/ui").headers["location"] == "/ai/ui/"
        assert client.get("/ai/ui/js/main.js").status_code == 200
        assert client.get("/ai/runs").status_code == 200


def test_pages_insert_no_markup() -> None:
    """The scripts never parse data as HTML: none of the APIs that would is used anywhere."""
    scripts = list((STATIC / "js").glob("*.js"))
    assert len(scripts) >= 5
    for script in scripts:
        text = script.read_text()
        for sink in SINKS:
            assert sink not in text, f"{script.name} uses {sink}"
