"""Headless Chromium driven by Playwright, using the system's binary (Debian's ``chromium``): no
browser is downloaded. CI installs it (.ci/run); elsewhere the tests are skipped when it is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright

#: Flags for a quiet, offline headless browser; ``--no-sandbox`` because CI runs as root.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = os.environ.get("PYFLUE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "no chromium binary: apt-get install -y chromium (or set PYFLUE_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs it, so its absence there is a failure, not a skip
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh headless browser (Playwright gives each launch a new temporary profile)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
