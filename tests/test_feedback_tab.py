"""Feedback in the studio's Chat tab: a 👍 clicked in a real browser, a rewrite, edit, delete and pairs
through the API, all landing in the run's feedback file; the chat-only page has none of it."""

from __future__ import annotations

import json
import shutil

import pytest
from gradio_client import Client

import app
from tests.browser import block, choose, launch_chromium, open_tab, require_chromium
from tests.export_runs import CHAT, adapter_run
from tests.ui_client import call, launch
from training.chat import feedback

SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
TUNED = "Fine-tuned: texts like you"


@pytest.fixture
def run(tmp_path_factory, isolated_data_dir, one_torch_thread):
    """A finished tiny run under the studio's runs folder, so the Chat tab lists it."""
    folder = isolated_data_dir / "runs" / "sam-tiny"
    shutil.copytree(adapter_run(tmp_path_factory).path, folder)
    return folder


@pytest.fixture
def studio(run):
    demo = app.build_app()
    url = launch(demo)
    yield url
    demo.close()


def bot_texts(history) -> list[str]:
    return [
        m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
        for m in history
        if m["role"] == "assistant"
    ]


def test_a_rewrite_is_recorded_reviewed_edited_and_deleted_and_becomes_a_pair(studio, run):
    client = Client(studio, verbose=False)
    _, tuned, _, _ = call(client, "/chat", **{SOURCE: str(run), "Message": CHAT[0]["content"], "Max new tokens": 24})
    reply = "\n".join(bot_texts(tuned))
    assert reply
    cleared, summary, table = call(
        client,
        "/say_it_like_me",
        **{SOURCE: str(run), TUNED: tuned, "✏️ Say it like me": "ya still on, 8?", "Max new tokens": 24},
    )
    assert cleared == "" and summary.startswith("**1 pairs** (rewrites) · 0 👍 · 0 👎")
    [entry] = feedback.read_feedback(run)
    system = json.loads((run / "final" / "talklike.json").read_text())["system_prompt"]
    assert entry["prompt"] == [{"role": "system", "content": system}, *CHAT]  # what the model was given
    assert (entry["reply"], entry["column"], entry["verdict"], entry["rewrite"]) == (
        reply,
        "tuned",
        "rewrite",
        "ya still on, 8?",
    )
    assert entry["decoding"]["max_new_tokens"] == 24 and entry["decoding"]["do_sample"] is False
    assert table["data"][0][:2] == [entry["id"], "rewrite"]

    note = call(client, "/feedback_pairs", **{SOURCE: str(run)})
    assert note.startswith("1 pairs written to")
    [pair] = [json.loads(line) for line in (run / "feedback_pairs.jsonl").read_text().splitlines()]
    assert pair["chosen"] == [{"role": "assistant", "content": "ya still on, 8?"}]
    assert pair["rejected"] == [{"role": "assistant", "content": reply}]

    call(
        client,
        "/edit_feedback",
        **{SOURCE: str(run), "Judgement id": entry["id"], "New rewrite (empty = keep)": "yep 8"},
    )
    assert feedback.read_feedback(run)[0]["rewrite"] == "yep 8"
    summary, table = call(client, "/delete_feedback", **{SOURCE: str(run), "Judgement id": entry["id"]})
    assert feedback.read_feedback(run) == [] and summary.startswith("**0 pairs**")


def test_feedback_needs_a_run_and_a_reply(studio, run):
    client = Client(studio, verbose=False)
    with pytest.raises(Exception, match="No reply to judge yet"):
        call(client, "/say_it_like_me", **{SOURCE: str(run), TUNED: [], "✏️ Say it like me": "hey"})
    with pytest.raises(Exception, match="Feedback is kept per run"):
        call(client, "/say_it_like_me", **{SOURCE: "offline-tiny", TUNED: [], "✏️ Say it like me": "hey"})
    assert not feedback.feedback_path(run).exists()


def test_the_chat_only_page_has_no_feedback_events(run):
    demo = app.build_chat_app(str(run))
    url = launch(demo)
    try:
        endpoints = Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert not {"/say_it_like_me", "/edit_feedback", "/delete_feedback", "/feedback_pairs"} & set(endpoints)
    finally:
        demo.close()


def test_a_thumb_clicked_in_the_browser_is_recorded(studio, run):
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        try:
            page.goto(studio)
            open_tab(page, "3 · Chat")
            choose(page, SOURCE, "sam-tiny")
            page.get_by_placeholder("Text something…").fill(CHAT[0]["content"])
            page.get_by_role("button", name="Send").click()
            tuned = block(page, TUNED)
            expect(page.get_by_text("tokens/s")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Feedback (private: stays in the run folder)").click()
            tuned.get_by_role("button", name="Like", exact=True).first.click()
            expect(page.get_by_text("0 pairs (rewrites) · 1 👍 · 0 👎")).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    [entry] = feedback.read_feedback(run)
    assert (entry["verdict"], entry["column"], entry["rewrite"]) == ("up", "tuned", None)
    assert entry["prompt"][-1] == CHAT[0] and entry["reply"]


def test_a_visitor_of_a_shared_studio_cannot_write_feedback(run, isolated_data_dir):
    from tests.ui_client import served
    from tests.visitors import Visitor

    with served("--owner", "alice", "--auth", "alice:pw", "--auth", "bob:pw2", data_dir=isolated_data_dir) as url:
        friend = Visitor(url, "127.0.0.43")
        try:
            assert friend.http.post(f"{url}/login", data={"username": "bob", "password": "pw2"}).status_code == 200
            refused = friend.call("/say_it_like_me", {SOURCE: str(run), TUNED: [], "✏️ Say it like me": "yo"})
            assert not refused.success and "Only alice" in refused.error
            assert not friend.call("/delete_feedback", {SOURCE: str(run), "Judgement id": "x"}).success
        finally:
            friend.close()
    assert not feedback.feedback_path(run).exists()
