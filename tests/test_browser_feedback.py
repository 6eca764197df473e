"""Feedback in a real Chromium: on a shared studio only the owner sees 👍 / 👎 and "✏️ Say it like me";
and the loop the feedback is for, chat -> rewrite -> pairs -> preference round -> report, as a user
does it in the studio."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.browser import WIDTH, block, choose, launch_chromium, open_tab, require_chromium, save_failure
from tests.export_runs import adapter_run
from tests.ui_client import served
from training.train import runs

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # require_chromium() turns this into a skip, or into a failure under CI
    expect = sync_playwright = None

UI_TIMEOUT_MS = 30_000  # a click's answer on a busy 2-core runner (5 s is Playwright's default)
CHAT_SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
REWRITE = "✏️ Say it like me"
TUNED = "Fine-tuned: texts like you"


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)  # Playwright's default, for any other browser test


@pytest.fixture
def signed_in(browser):
    """A new browser session per person, logged in with Gradio's --auth form."""
    contexts = []

    def session(url: str, user: str, password: str):
        context = browser.new_context(viewport={"width": WIDTH, "height": 1400})
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        assert page.request.post(f"{url}/login", form={"username": user, "password": password}).ok
        page.goto(url)
        return page

    yield session
    for context in contexts:
        context.close()


def send(page, text: str):
    """Send a message in the Chat tab and wait for the tuned column's reply; returns that column."""
    page.get_by_placeholder("Text something…").fill(text)
    page.get_by_role("button", name="Send").click()
    tuned = block(page, TUNED)
    expect(tuned.get_by_test_id("bot")).to_have_count(1, timeout=60_000)
    expect(page.get_by_text(re.compile(r"\d+ tokens in .* tokens/s"))).to_be_visible(timeout=60_000)
    return tuned


def test_on_a_shared_studio_only_the_owner_sees_the_feedback_widgets(signed_in, tmp_path_factory, isolated_data_dir):
    shutil.copytree(adapter_run(tmp_path_factory).path, runs.runs_root() / "public-run")
    runs.set_published(runs.Run(runs.runs_root() / "public-run"), True)
    args = ("--owner", "alice", "--auth", "alice:owner-pass", "--auth", "bob:friend-pass", "--max-new-tokens", 8)
    with served(*args, data_dir=isolated_data_dir) as url:
        friend, owner = signed_in(url, "bob", "friend-pass"), signed_in(url, "alice", "owner-pass")
        try:
            for page in (friend, owner):
                open_tab(page, "3 · Chat")
                choose(page, CHAT_SOURCE, "public-run")
                page.get_by_label("Side by side with the base model").check()
                tuned = send(page, "hey")
                base = block(page, "Base model (same weights, adapter off)")
                expect(base.get_by_test_id("bot")).to_have_count(1)
            # Bob chatted with the same run, and sees no thumbs on either column, no rewrite box, no review.
            for column in (block(friend, TUNED), block(friend, "Base model (same weights, adapter off)")):
                expect(column.get_by_role("button", name="Like", exact=True)).to_have_count(0)
                expect(column.get_by_role("button", name="Dislike", exact=True)).to_have_count(0)
            expect(friend.get_by_label(REWRITE)).to_have_count(0)
            expect(friend.get_by_text("Feedback (private: stays in the run folder)")).to_be_hidden()
            # Alice, on the same page of the same server, has all of it.
            for column in (tuned, base):
                expect(column.get_by_role("button", name="Like", exact=True)).to_have_count(1)
                expect(column.get_by_role("button", name="Dislike", exact=True)).to_have_count(1)
            expect(owner.get_by_label(REWRITE)).to_be_visible()
            expect(owner.get_by_text("Feedback (private: stays in the run folder)")).to_be_visible()
        except Exception:
            save_failure(friend, "feedback-visitor")
            save_failure(owner, "feedback-owner")
            raise
