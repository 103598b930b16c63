"""Fixtures: one headless Chromium for the session, and the test project served with the dashboard
by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from pyflue_asgi import create_app
from tests.asgi._live import serve
from tests.ui._browser import chromium
from tests.ui._project import make_project


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("ui") / "project")


@pytest.fixture(scope="module")
def url(project: Path) -> Iterator[str]:
    with serve(create_app(project, ui=True, heartbeat=0.5, poll_interval=0.02)) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context (its own session storage); page errors fail the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: _console(msg.type, msg.text, errors))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def _console(kind: str, text: str, errors: list[str]) -> None:
    # The browser logs every 4xx answer; the 401 before a token and the 404 of a server without
    # dispatch routes are expected answers, not page errors.
    if kind == "error" and not text.startswith("Failed to load resource"):
        errors.append(text)
