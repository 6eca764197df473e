"""The Data tab's Knowledge files in a real Chromium: upload notes and code, build, untick a row in
the review table, save, and only the kept rows are in the saved data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app
from tests.browser import WIDTH, block, launch_chromium, open_tab, require_chromium, save_failure
from tests.ui_client import launch

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # require_chromium says why the test is skipped
    sync_playwright = None

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "knowledge"


@pytest.fixture
def page(isolated_data_dir):
    require_chromium()
    demo = app.build_app()
    url = launch(demo)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1600})
        page.goto(url)
        yield page
        browser.close()
    demo.close()


def test_untick_a_row_in_the_review_table_and_save_the_rest(page, isolated_data_dir, request):
    try:
        open_tab(page, "Data")
        page.get_by_text("Knowledge files: what you know").click()
        # By its label: the n-th file input on the page depends on what Gradio has rendered so far
        # (a table's hidden .csv import input sometimes came second).
        uploader = block(page, "Knowledge files (markdown/text notes, docs, code; folders as zip)")
        uploader.locator("input[type=file]").set_input_files(
            [str(SAMPLES / "climbing.md"), str(SAMPLES / "tip_split.py")]
        )
        page.locator("[aria-label='tip_split.py']").wait_for()  # the upload finished
        page.get_by_role("button", name="Build knowledge rows").click()
        page.get_by_text("Walk me through The knee (Climbing log).").wait_for(timeout=60_000)
        page.get_by_test_id("cell-1-0").locator(".bool-cell").click()  # row 1's keep box: The knee
        assert not page.get_by_test_id("cell-1-0").get_by_test_id("checkbox").is_checked()
        page.get_by_role("button", name="Save the kept rows").click()
        page.get_by_text("Saved 3 rows (1 left out).").wait_for(timeout=30_000)
    except Exception:
        save_failure(page, request.node.name)
        raise
    saved = next((isolated_data_dir / "datasets").glob("knowledge-*.jsonl"))
    questions = [json.loads(line)["messages"][0]["content"] for line in saved.read_text().splitlines()]
    assert questions == [
        "Walk me through Climbing log.",
        "Walk me through Projects (Climbing log).",
        "What does the tip_split.py file look like in the repo?",
    ]
