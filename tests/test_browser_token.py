"""The Hub token typed into the Export tab never leaves that form, checked in a real Chromium:
after a push, neither localStorage, sessionStorage, Gradio's run-history page (/gradio_api/runs)
nor any response the browser received holds it.

Twice: with Gradio's default launch (run history on, which records every public event's inputs in
the browser: the push event must not be one of them), and as `python app.py` launches (history off).
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

import app
from tests.browser import (
    WIDTH,
    choose,
    launch_chromium,
    open_tab,
    require_chromium,
    save_failure,
)
from tests.export_runs import adapter_run
from tests.hub_server import HubServer, point_huggingface_hub_at
from tests.ui_client import launch, served
from training.train import runs

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # require_chromium() turns this into a skip, or into a failure under CI
    expect = sync_playwright = None

TOKEN = "hf_browserTokenNeverStored1234567"
TIMEOUT_MS = 60_000
# Event streams (Gradio's queue results) cannot be read through Playwright's responses while they
# stay open; every message the page parses (each one is JSON) is recorded in the page instead.
RECORD_WHAT_ARRIVES = """
window.__arrived = [];
const parse = JSON.parse;
JSON.parse = function (text, ...rest) {
    if (typeof text === "string") window.__arrived.push(text);
    return parse.call(this, text, ...rest);
};
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(users={TOKEN: "alice"}) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


@contextmanager
def studio(how: str, data_dir):
    if how == "app":
        with served(data_dir=data_dir) as url:
            yield url
        return
    demo = app.build_app()
    try:
        yield launch(demo)  # Gradio's own defaults: run history on
    finally:
        demo.close()


@pytest.mark.parametrize("how", ["gradio-defaults", "app"])
def test_the_token_is_kept_by_no_browser_storage_history_page_or_response(how, trained, hub, isolated_data_dir):
    require_chromium()
    shutil.copytree(trained.path, runs.runs_root() / "sam-bot")
    responses = []  # read once the page is done: reading a stream from inside the event would stall it
    with studio(how, isolated_data_dir) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport={"width": WIDTH, "height": 900}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("response", lambda response: responses.append(response))
        page.add_init_script(RECORD_WHAT_ARRIVES)
        try:
            page.goto(url)
            push(page)
            stored = page.evaluate("() => JSON.stringify([{...window.localStorage}, {...window.sessionStorage}])")
            streamed = page.evaluate("() => window.__arrived")
            page.goto(f"{url}/gradio_api/runs")
            page.wait_for_load_state("networkidle")
            history_page = page.locator("body").inner_text()
            bodies = [_body(response) for response in responses] + streamed
        except BaseException:
            save_failure(page, f"token-{how}")
            raise
        finally:
            browser.close()
    assert hub.state.repo("alice/sam-bot") is not None  # the push happened, with the token
    assert TOKEN not in stored, "the token is in the browser's storage"
    assert TOKEN not in history_page, "the run-history page shows the token"
    assert len(bodies) > 10 and any("Pushed privately" in body for body in bodies)  # the event streams were read
    leaking = [body[:200] for body in bodies if TOKEN in body]
    assert not leaking, f"a response carried the token back: {leaking}"
    if how == "gradio-defaults":  # history was on and recording: the absence above means something
        assert "export_run" in stored and "push_run" not in stored
    else:
        assert "export_run" not in stored  # `python app.py` keeps no run history at all


def push(page) -> None:
    open_tab(page, "5 · Export")
    choose(page, "Run to export", "sam-bot")
    page.get_by_role("button", name="Export", exact=True).click()  # an ordinary event first, for the history
    expect(page.get_by_text("Exported to")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_text("Push to the Hugging Face Hub", exact=True).click()
    page.get_by_label("Repository (you/name)").fill("alice/sam-bot")
    page.get_by_label("Token (write access)").fill(TOKEN)
    page.get_by_role("button", name="Export and push").click()
    expect(page.get_by_text("Pushed privately to")).to_be_visible(timeout=TIMEOUT_MS)


def _body(response) -> str:
    try:
        return response.text()
    except Exception:  # noqa: BLE001 - redirects and aborted streams have no body to read
        return ""
