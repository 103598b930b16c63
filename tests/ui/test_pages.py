"""The dashboard end to end in a real headless Chromium against a real server: the runs table, a
run's nested timeline growing live, cancelling, a streamed prompt, markup shown as text, the token
prompt, paging and filters, and a run of thousands of events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Request as Request_
from playwright.sync_api import Route as Route_
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from pyflue import Project, init
from pyflue.stores.sqlite import SQLiteSessionStore
from pyflue_asgi import create_app
from tests.asgi._live import serve
from tests.ui._project import MARKUP


def start(
    url: str, workflow: str, payload: Any, *, wait: bool = False, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(
        f"{url}/workflows/{workflow}" + ("?wait=result" if wait else ""),
        json=payload,
        headers=headers,
        timeout=30,
    )
    assert reply.status_code in (200, 202), reply.text
    body: dict[str, Any] = reply.json()
    return body


def open_run(page: Page, url: str, run_id: str) -> None:
    page.goto(f"{url}/ui/#/runs/{quote(run_id, safe='')}")


def row(page: Page, kind: str, label: str) -> Any:
    return page.locator(f".tl-row[data-kind={kind}]", has=page.locator(".tl-label", has_text=label))


def test_a_run_appears_and_its_tree_nests_model_and_tool_calls(page: Page, url: str) -> None:
    run = start(url, "summarize", {"text": "to be or not to be"}, wait=True)
    page.goto(url + "/ui/")
    link = page.locator(f'tr[data-run="{run["run_id"]}"] a')
    expect(link).to_be_visible()
    expect(page.locator(f'tr[data-run="{run["run_id"]}"] .status')).to_have_text("completed")
    link.click()
    expect(page.locator(".run-summary")).to_have_attribute("data-status", "completed")
    expect(page.locator(".run-io")).to_contain_text('"review"')

    # prompt operation > model call, and > tool count_words; the reviewer task's operation sits
    # under the `task` tool call that started it, with its own model and tool calls inside.
    prompt = page.locator(".tl-row[data-kind=operation]", has=page.locator(".tl-label", has_text="prompt"))
    expect(prompt).to_have_count(1)
    prompt_key = prompt.get_attribute("data-key")
    assert prompt.get_attribute("data-depth") == "1"
    models = page.locator(f'.tl-row[data-kind=model][data-parent="{prompt_key}"]')
    expect(models).to_have_count(2)  # asks for tools, then answers
    tool = page.locator(f'.tl-row[data-kind=tool][data-parent="{prompt_key}"]', has_text="count_words")
    expect(tool).to_have_count(1)
    assert tool.get_attribute("data-depth") == "2"
    task_tool = page.locator(f'.tl-row[data-kind=tool][data-parent="{prompt_key}"]', has_text="reviewer")
    task_op = page.locator(
        f'.tl-row[data-kind=operation][data-parent="{task_tool.get_attribute("data-key")}"]'
    )
    expect(task_op).to_have_count(1)
    assert task_op.get_attribute("data-depth") == "3"
    inner = page.locator(f'.tl-row[data-kind=tool][data-parent="{task_op.get_attribute("data-key")}"]')
    expect(inner).to_contain_text("count_words")
    expect(page.locator(".tl-row[data-kind=log]").first).to_contain_text("summarizing")

    # A node opens to its details; the keyboard moves through the tree.
    tool.click()
    details = page.locator(".details")
    expect(details).to_have_attribute("data-kind", "tool")
    expect(details).to_contain_text("Arguments")
    expect(details.locator("pre").nth(1)).to_have_text("1")  # count_words's result
    page.keyboard.press("ArrowUp")
    expect(details).to_have_attribute("data-kind", "model")
    expect(details).to_contain_text("tool_calls")
    page.keyboard.press("ArrowLeft")  # a leaf: to its parent
    expect(details).to_have_attribute("data-kind", "operation")
    page.keyboard.press("ArrowLeft")  # collapse the operation: its children leave the view
    expect(models).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(models).to_have_count(2)


def test_a_live_run_grows_while_watched_and_the_table_follows_it(page: Page, url: str, project: Path) -> None:
    page.goto(url + "/ui/")
    expect(page.locator("tbody")).to_be_visible()
    run = start(url, "gated", {"count": 3, "tag": "live"})
    in_table = page.locator(f'tr[data-run="{run["run_id"]}"]')
    expect(in_table).to_have_attribute("data-status", "running")  # appeared without a reload
    in_table.locator("a").click()

    timeline = page.locator(".timeline")
    expect(page.locator(".tl-row[data-kind=log]")).to_have_count(3)
    expect(page.locator(".run-summary")).to_have_attribute("data-status", "running")
    expect(page.locator("button", has_text="Cancel run")).to_be_visible()
    rows_before = int(timeline.get_attribute("data-rows") or 0)

    (project / "release-live").write_text("")
    expect(page.locator(".tl-row[data-kind=log]")).to_have_count(6)
    expect(page.locator(".run-summary")).to_have_attribute("data-status", "completed")
    assert int(timeline.get_attribute("data-rows") or 0) == rows_before + 3
    expect(page.locator(".run-io")).to_contain_text('"count": 3')
    expect(page.locator("button", has_text="Cancel run")).to_be_hidden()

    page.goto(url + "/ui/")
    expect(page.locator(f'tr[data-run="{run["run_id"]}"]')).to_have_attribute("data-status", "completed")


def test_the_cancel_button_cancels_a_running_run(page: Page, url: str) -> None:
    run = start(url, "stuck", {})
    open_run(page, url, run["run_id"])
    expect(page.locator(".tl-row[data-kind=log]")).to_contain_text("waiting")
    page.locator("button", has_text="Cancel run").click()
    expect(page.locator(".run-summary")).to_have_attribute("data-status", "cancelled")
    assert httpx.get(f"{url}/runs/{quote(run['run_id'], safe='')}").json()["status"] == "cancelled"


def test_a_prompt_typed_on_the_agent_page_streams_its_answer(page: Page, url: str) -> None:
    page.goto(url + "/ui/#/agents")
    expect(page.locator(".agent-list a")).to_have_count(2)
    page.locator(".agent-list a", has_text="assistant").click()
    page.locator("#p-instance").fill("browser-case")
    page.locator("#p-message").fill("How many words are in 'to be or not to be'?")
    page.keyboard.press("Control+Enter")
    status = page.locator("#p-status")
    expect(status).to_have_attribute("data-done", "done")
    assert int(status.get_attribute("data-deltas") or 0) > 1  # arrived in pieces, not at once
    expect(status).to_contain_text("test/test")
    # The answer is now shown as the store holds it, and the new instance and session are listed.
    transcript = page.locator(".transcript:not(.live)")
    expect(transcript.locator(".msg.user").first).to_contain_text("to be or not to be")
    expect(transcript.locator(".tool-call").first).to_contain_text("count_words")
    expect(transcript.locator(".msg.assistant").last).to_contain_text("[test model]")
    expect(page.locator('#instances a[aria-current="true"]')).to_have_text("browser-case")
    expect(page.locator('#sessions a[aria-current="true"]')).to_have_text("default")
    assert page.evaluate("location.hash") == "#/agents/assistant/browser-case/default"
    expect(page.locator("#p-message")).to_be_focused()  # ready for the next one


def test_a_stored_transcript_is_found_by_instance_and_session(page: Page, url: str) -> None:
    """Prompt, reload, then walk agent → instance → session with the keyboard to the stored transcript:
    user message, the tool call with its arguments, the tool result, the answer."""
    page.goto(url + "/ui/#/agents/assistant")
    page.locator("#p-instance").fill("case 7 ünï?#")  # spaces, non-ASCII, "?" and "#" are data
    page.locator("#p-session").fill("billing")
    page.locator("#p-message").fill("Count the words in 'a rose is a rose'")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#p-status")).to_have_attribute("data-done", "done")

    page.goto(url + "/ui/")
    page.reload()
    page.locator('nav a[data-page="agents"]').click()
    page.locator(".agent-list a", has_text="assistant").click()
    instance = page.locator("#instances a", has_text="case 7 ünï?#")
    instance.focus()
    page.keyboard.press("Enter")
    expect(page.locator('#instances a[aria-current="true"]')).to_be_focused()  # focus kept in the new view
    session = page.locator("#sessions a", has_text="billing")
    session.focus()
    page.keyboard.press("Enter")
    expect(page.locator('#sessions a[aria-current="true"]')).to_have_text("billing")
    transcript = page.locator(".transcript:not(.live)")
    expect(page.locator("#transcript-title")).to_have_text("Transcript · case 7 ünï?# / billing")
    expect(transcript.locator(".msg").first).to_contain_text("a rose is a rose")
    call = transcript.locator(".tool-call").first
    expect(call).to_contain_text("count_words")
    expect(call.locator("pre.args")).to_contain_text('"text"')
    result = transcript.locator(".msg.tool-result").first
    expect(result).to_contain_text("count_words")
    assert result.get_attribute("data-call") == call.get_attribute("data-call")
    expect(transcript.locator(".msg.assistant").last).to_contain_text("[test model]")
    # In stored order; the message holding both tool results gives one entry per result.
    seqs = [int(m.get_attribute("data-seq") or 0) for m in transcript.locator(".msg").all()]
    assert seqs == sorted(seqs) and sorted(set(seqs)) == [1, 2, 3, 4]


def test_a_compaction_summary_is_marked_in_the_transcript(page: Page, url: str, project: Path) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        reply = client.post("/agents/assistant/compacted", json={"message": "Count 'one two three'"})
        assert reply.status_code == 200
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds an event loop in this thread
        pool.submit(anyio.run, _compact, project, "compacted").result()
    page.goto(url + "/ui/#/agents/assistant/compacted/default")
    summary = page.locator(".transcript .msg.summary")
    expect(summary).to_have_count(1)
    expect(summary).to_contain_text("compaction summary")
    assert summary.get_attribute("data-seq") == "1"
    expect(page.locator(".transcript .msg")).to_have_count(1)  # everything was summarised


async def _compact(project: Path, instance: str) -> None:
    loaded = Project.load(project)
    store = SQLiteSessionStore(loaded.db_path)
    try:
        harness = await init(loaded.agent("assistant"), id=instance, session_store=store)
        await (await harness.session()).compact(keep_recent=0)
    finally:
        await store.aclose()


def test_markup_from_a_tool_is_shown_as_text(page: Page, url: str) -> None:
    run = start(url, "markup", {}, wait=True)
    open_run(page, url, run["run_id"])
    tool = page.locator(".tl-row[data-kind=tool]", has_text="fetch_page")
    tool.click()
    result = page.locator(".details pre").nth(1)
    expect(result).to_have_text(MARKUP)
    expect(page.locator(".tl-row[data-kind=log]").first).to_contain_text("<script>")
    expect(page.locator(".run-io")).to_contain_text("<script>window.__pwned = 1</script>")

    page.goto(url + "/ui/#/agents/marker")
    page.locator("#p-message").fill("fetch it")
    page.locator("button", has_text="Send").click()
    expect(page.locator("#p-status")).to_have_attribute("data-done", "done")
    expect(page.locator(".msg.tool-result pre").first).to_have_text(MARKUP)
    page.reload()  # the stored transcript, read back from the store, shows it as text too
    expect(page.locator(".msg.tool-result pre").first).to_have_text(MARKUP)
    expect(page.locator(".msg.assistant").last).to_contain_text("<script>")

    assert page.evaluate("window.__pwned") is None
    assert page.locator("main script, main img, main b").count() == 0


def test_the_token_is_asked_once_and_kept_for_the_tab(browser: Browser, project: Path) -> None:
    with serve(create_app(project, ui=True, auth="s3cret", poll_interval=0.02)) as url:
        run = start(url, "hello", {"name": "Ada"}, wait=True, token="s3cret")
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/ui/")
        dialog = page.locator("dialog#auth")
        expect(dialog).to_be_visible()
        page.locator("#auth-token").fill("wrong")
        page.keyboard.press("Enter")
        expect(page.locator("#auth-error")).to_have_text("The server did not accept that token.")
        page.locator("#auth-token").fill("s3cret")
        page.locator("button", has_text="Use token").click()
        expect(dialog).to_be_hidden()
        expect(page.locator(f'tr[data-run="{run["run_id"]}"]')).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('pyflue.token')") == "s3cret"

        page.reload()  # same tab: no second prompt
        expect(page.locator(f'tr[data-run="{run["run_id"]}"]')).to_be_visible()
        expect(dialog).to_be_hidden()
        page.locator(f'tr[data-run="{run["run_id"]}"] a').click()  # streams carry the token too
        expect(page.locator(".run-summary")).to_have_attribute("data-status", "completed")
        expect(page.locator(".tl-row[data-kind=run]")).to_contain_text("hello")

        page.locator("#forget").click()
        expect(dialog).to_be_visible()
        context.close()


def test_runs_are_paged_and_filtered(page: Page, url: str) -> None:
    ids = [start(url, "hello", {"name": f"n{i}"}, wait=True)["run_id"] for i in range(27)]
    failed = start(url, "boom", {}, wait=True)
    page.goto(url + "/ui/#/runs?workflow=hello&limit=25")
    rows = page.locator("tbody tr[data-run]")
    expect(rows).to_have_count(25)
    expect(rows.first).to_have_attribute("data-run", ids[-1])  # newest first
    page.locator("button", has_text="Older").click()
    expect(page.locator(".pager")).to_contain_text("Page 2")
    assert rows.count() >= 2
    seen = rows.evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert ids[1] in seen and ids[0] in seen
    page.locator("button", has_text="Newer").click()
    expect(rows.first).to_have_attribute("data-run", ids[-1])

    page.locator("#f-workflow").select_option("")
    page.locator("#f-status").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run", failed["run_id"])
    expect(rows.first.locator("td.err")).to_have_text("ValueError: the boom workflow always fails")
    assert "status=failed" in page.url


def test_a_run_of_thousands_of_events_stays_light(page: Page, url: str) -> None:
    run = start(url, "big", {"count": 5000}, wait=True)
    open_run(page, url, run["run_id"])
    timeline = page.locator(".timeline")
    expect(timeline).to_have_attribute("data-events", "5002")  # run_start, 5000 lines, run_end
    expect(timeline).to_have_attribute("data-rows", "5001")
    assert page.locator(".tl-row").count() < 120  # only the rows in view exist
    page.locator(".tl-row").first.click()
    page.keyboard.press("End")
    expect(page.locator(".details")).to_contain_text("4999")
    expect(page.locator(".tl-row.selected")).to_contain_text("i=4999")


def test_the_real_app_shows_its_dispatches_page(page: Page, url: str) -> None:
    """The app serves the dispatch routes, so the page finds them and offers the dispatches view."""
    page.goto(url + "/ui/")
    expect(page.locator("tbody")).to_be_visible()
    expect(page.locator('nav a[data-page="agents"]')).to_be_visible()
    assert httpx.get(url + "/dispatches").status_code == 200
    expect(page.locator('nav a[data-page="dispatches"]')).to_be_visible()


def test_dispatches_page_shows_the_queue_when_the_routes_exist(page: Page, project: Path) -> None:
    """Beside an app that answers /dispatches (a stand-in with the dispatch store's record shape),
    the page appears, lists the queue and cancels an item."""
    items: dict[str, dict[str, Any]] = {
        "dispatch:01A": {"status": "queued", "outcome": None},
        "dispatch:01B": {"status": "delivered", "outcome": {"text": "done <b>ok</b>", "usage": {}}},
        "dispatch:01C": {"status": "failed", "outcome": {"error": {"type": "ModelError", "message": "down"}}},
    }

    def record(dispatch_id: str) -> dict[str, Any]:
        return {
            "dispatch_id": dispatch_id,
            "agent": "assistant",
            "instance_id": "case-1",
            "session_id": "default",
            "input": "hi",
            "status": items[dispatch_id]["status"],
            "accepted_at": "2026-01-01T10:00:00Z",
            "attempts": 1,
            "max_attempts": 5,
            "outcome": items[dispatch_id]["outcome"],
        }

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse({"dispatches": [record(d) for d in items], "next_cursor": None})

    async def cancel(request: Request) -> JSONResponse:
        items[request.path_params["id"]]["status"] = "cancelled"
        return JSONResponse(record(request.path_params["id"]))

    api = create_app(project, ui=True)
    host = Starlette(
        routes=[
            Route("/dispatches", listing),
            Route("/dispatches/{id}/cancel", cancel, methods=["POST"]),
            Mount("", app=api),
        ],
        lifespan=api.lifespan,
    )
    with serve(host) as url:
        page.goto(url + "/ui/")
        link = page.locator('nav a[data-page="dispatches"]')
        expect(link).to_be_visible()
        link.click()
        rows = page.locator("tr[data-dispatch]")
        expect(rows).to_have_count(3)
        expect(page.locator('tr[data-dispatch="dispatch:01B"]')).to_contain_text("done <b>ok</b>")
        expect(page.locator('tr[data-dispatch="dispatch:01C"] td.err')).to_have_text("ModelError: down")
        assert page.locator('tr[data-dispatch="dispatch:01B"] button').count() == 0  # finished: no cancel
        page.locator('tr[data-dispatch="dispatch:01A"] button', has_text="Cancel").click()
        expect(page.locator('tr[data-dispatch="dispatch:01A"]')).to_have_attribute("data-status", "cancelled")


def test_a_dropped_stream_resumes_after_the_last_event(page: Page, url: str) -> None:
    run = start(url, "big", {"count": 20}, wait=True)
    asked: list[str | None] = []

    def cut_first_stream(route: Route_, request: Request_) -> None:
        asked.append(request.headers.get("last-event-id"))
        if len(asked) > 1:
            route.continue_()
            return
        whole = route.fetch()
        messages = whole.text().split("\n\n")
        route.fulfill(response=whole, body="\n\n".join(messages[:5]) + "\n\n")  # then the connection ends

    page.route("**/stream*", cut_first_stream)
    open_run(page, url, run["run_id"])
    timeline = page.locator(".timeline")
    expect(timeline).to_have_attribute("data-events", "22")
    expect(page.locator(".run-summary")).to_have_attribute("data-status", "completed")
    assert asked == [None, "5"]  # the second request went on from seq 5
