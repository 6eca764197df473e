"""Feedback in a real Chromium: on a shared studio only the owner sees 👍 / 👎 and "✏️ Say it like me";
and the loop the feedback is for, chat -> rewrite -> pairs -> preference round -> report, as a user
does it in the studio."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.browser import WIDTH, block, choose, open_tab, patient_chromium, save_failure
from tests.export_runs import adapter_run
from tests.ui_client import served
from training.train import runs

try:
    from playwright.sync_api import expect
except ImportError:  # require_chromium() turns this into a skip, or into a failure under CI
    expect = None

UI_TIMEOUT_MS = 30_000  # a click's answer on a busy 2-core runner (5 s is Playwright's default)
CHAT_SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
REWRITE = "✏️ Say it like me"
TUNED = "Fine-tuned: texts like you"


@pytest.fixture(scope="module")
def browser():
    with patient_chromium(UI_TIMEOUT_MS) as chromium:
        yield chromium


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


REWRITES = {
    "hey! are you around this weekend?": "ya!! saturday works, 8?",
    "what are you up to?": "nm just climbing lol",
}


@pytest.fixture
def studio(tmp_path_factory, isolated_data_dir, one_torch_thread):
    """The local studio, its runs folder holding one finished tiny LoRA run."""
    import app
    from tests.ui_client import launch

    run = runs.runs_root() / "sam-tiny"
    shutil.copytree(adapter_run(tmp_path_factory).path, run)
    demo = app.build_app()
    url = launch(demo)
    yield url, run
    demo.close()


def sequence_logp(model, prompt: list[dict], reply: list[dict]) -> float:
    """log p(reply | prompt) summed over the reply's tokens: the quantity DPO's rewards compare."""
    import torch

    template = model.tokenizer.apply_chat_template
    start = len(template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"])
    ids = torch.tensor([template(prompt + reply, return_dict=True)["input_ids"]])
    with torch.no_grad():
        logps = torch.log_softmax(model.model(input_ids=ids).logits[0, :-1].float(), -1)
    return float(logps.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[start - 1 :].sum())


def margins(run, pairs: list[dict]) -> list[float]:
    """Per pair, log p(chosen) - log p(rejected) under the run's model."""
    from training.chat.loading import load_chat_model

    model = load_chat_model(run)
    return [
        sequence_logp(model, p["prompt"], p["chosen"]) - sequence_logp(model, p["prompt"], p["rejected"]) for p in pairs
    ]


def test_chat_rewrite_pairs_preference_round_and_its_report(browser, studio):
    import json

    url, run = studio
    page = browser.new_page(viewport={"width": WIDTH, "height": 1600})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(url)
    try:
        _chat_rewrite_and_pair(page, run)
        _train_the_round(page, run)
        round_name = page.get_by_label("Watching run").input_value()
        _report(page, round_name)
    except Exception:
        save_failure(page, "feedback-journey")
        raise
    finally:
        page.close()
    pairs_file = run / "feedback_pairs.jsonl"
    pairs = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    assert {p["prompt"][-1]["content"]: p["chosen"][0]["content"] for p in pairs} == REWRITES
    trained = runs.runs_root() / round_name
    config = json.loads(json.dumps(__import__("yaml").safe_load((trained / "config.yaml").read_text())))
    assert (config["method"], config["train_file"], config["from_run"]) == ("dpo", str(pairs_file), str(run))
    before, after = margins(run, pairs), margins(trained, pairs)
    # The round moved the model towards the user's rewrites and away from its own replies.
    assert sum(after) / len(after) > sum(before) / len(before), (before, after)
    assert sum(m > 0 for m in after) >= sum(m > 0 for m in before)


def _chat_rewrite_and_pair(page, run) -> None:
    open_tab(page, "3 · Chat")
    choose(page, CHAT_SOURCE, run.name)
    page.get_by_text("Feedback (private: stays in the run folder)").click()  # the count and the review
    for number, (message, rewrite) in enumerate(REWRITES.items(), 1):
        page.get_by_placeholder("Text something…").fill(message)
        page.get_by_role("button", name="Send").click()
        tuned = block(page, TUNED)
        expect(tuned.get_by_test_id("user")).to_have_count(number)
        expect(page.get_by_text(re.compile(r"\d+ tokens in .* tokens/s"))).to_be_visible(timeout=60_000)
        page.get_by_label(REWRITE).fill(rewrite)
        page.get_by_role("button", name="✏️ Save my version").click()
        expect(page.get_by_text(f"{number} pairs", exact=True)).to_be_visible()
    block(page, TUNED).get_by_role("button", name="Dislike", exact=True).last.click()
    expect(page.get_by_text(re.compile(r"^2 pairs \(rewrites\) · 0 👍 · 1 👎"))).to_be_visible()
    page.get_by_role("button", name="Make preference pairs from this run's feedback").click()
    expect(page.get_by_text(re.compile(r"^2 pairs written to"))).to_be_visible()


def _train_the_round(page, run) -> None:
    panel = open_tab(page, "2 · Train")
    choose(page, "Recipe", "Preference round")
    data = panel.get_by_label("Training data (from the Data tab)", exact=True)
    data.fill(str(run / "feedback_pairs.jsonl"))
    data.press("Enter")
    for label, value in {"Max steps (0 = by epochs)": 4, "Learning rate": "0.001"}.items():
        panel.get_by_label(label, exact=True).fill(str(value))
    panel.get_by_text("Advanced", exact=True).click()
    # A textbox's accessible name goes on with its help line: matched by its start.
    panel.get_by_label("Start from run (dpo/kto)").fill(str(run))
    for label, value in {"Evaluate every (steps)": 2, "Log every (steps)": 1}.items():
        panel.get_by_label(label, exact=True).fill(str(value))
    page.get_by_role("button", name="Start training").click()
    watching = page.get_by_label("Watching run")
    expect(watching).not_to_have_value(run.name)  # the page follows the round it started
    completed = page.get_by_text(re.compile(rf"^{re.escape(watching.input_value())}: completed"))
    expect(completed).to_be_visible(timeout=240_000)


def _report(page, round_name: str) -> None:
    open_tab(page, "4 · Report")
    choose(page, "Run to report on", round_name)
    note = page.get_by_text(re.compile(r"^Preference round \(dpo\), held-out pairs at step 4: preference accuracy"))
    expect(note).to_be_visible()
