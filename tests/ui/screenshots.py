"""Take the screenshots of docs/dashboard.md: ``python -m tests.ui.screenshots``.

Serves a copy of the quickstart (offline test model) with the dashboard, runs its workflow and a few
others, and photographs the runs table, one run with a selected tool call, and the agent page (its
instances, sessions and stored transcript) after two streamed prompts, at a laptop's size, into docs/img/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx

from pyflue_asgi import create_app
from tests.asgi._live import serve
from tests.ui._browser import chromium
from tests.ui._project import make_project

OUT = Path(__file__).resolve().parents[2] / "docs" / "img"
TEXT = "To be, or not to be, that is the question: whether tis nobler in the mind to suffer."


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "project")
        with serve(create_app(root, ui=True)) as url, chromium() as browser:
            for name in ("Ada", "Grace"):
                httpx.post(f"{url}/workflows/hello?wait=result", json={"name": name}, timeout=30)
            httpx.post(f"{url}/workflows/boom?wait=result", json={}, timeout=30)
            httpx.post(f"{url}/workflows/stuck", json={}, timeout=30)
            run = httpx.post(f"{url}/workflows/summarize?wait=result", json={"text": TEXT}, timeout=30).json()
            page = browser.new_page(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
            page.goto(url + "/ui/")
            page.wait_for_selector(f'tr[data-run="{run["run_id"]}"]')
            page.screenshot(path=OUT / "dashboard-runs.png")

            page.goto(f"{url}/ui/#/runs/{quote(run['run_id'], safe='')}")
            page.wait_for_selector(".run-summary[data-status=completed]")
            page.locator(".tl-row[data-kind=tool]", has_text="count_words").first.click()
            page.screenshot(path=OUT / "dashboard-run.png", full_page=True)

            page.goto(url + "/ui/#/agents/assistant")
            page.locator("#p-instance").fill("case-42")
            page.locator("#p-message").fill("How many words are in 'to be or not to be'?")
            page.keyboard.press("Control+Enter")
            page.wait_for_selector("#p-status[data-done]")
            page.locator("#p-message").fill("And in 'a rose is a rose'?")
            page.keyboard.press("Control+Enter")
            page.wait_for_selector("#p-status[data-done]")
            page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the picture
            page.screenshot(path=OUT / "dashboard-agent.png", full_page=True)
            page.close()
            stuck = httpx.get(f"{url}/runs?status=running").json()["runs"][0]["run_id"]
            httpx.post(f"{url}/runs/{quote(stuck, safe='')}/cancel")


if __name__ == "__main__":
    main()
