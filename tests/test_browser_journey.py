"""The whole user journey in a real Chromium: upload the sample Messenger export, build examples,
train the offline demo model while watching (and reloading) the page, chat with the result, read its
persona report, export it merged and push it to a local Hub. Also: a bad upload shows a readable
error, not a traceback.

Every step is done as a user does it, through visible labels. Screenshots of the tabs go to
test-artifacts/ on every run (the README's come from scripts/readme_screenshots.py, a real model).
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import app
from tests.browser import (
    WIDTH,
    block,
    choose,
    clear_old_failures,
    open_tab,
    patient_chromium,
    plot,
    plot_drawing,
    progress_step,
    save_failure,
    screenshot,
    toasts,
)
from tests.hub_server import HubServer, point_huggingface_hub_at
from tests.ui_client import launch
from training.chat.memory import is_pending

try:
    from playwright.sync_api import expect
except ImportError:  # require_chromium() turns this into a skip, or into a failure under CI
    expect = None

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"
TOKEN = "hf_browserJourneySecret123456"
MERGED = "Merged full model (loads on its own)"
TRAIN_STEPS = 40
EVAL_EVERY = 5
# A run short enough for CI yet long enough to watch, reload and watch again (about 1 step/s here).
SMALL_RUN = {"Max steps (0 = by epochs)": TRAIN_STEPS, "Batch size": 4, "Max length (tokens)": 128}
FREQUENT_LOGS = {"Log every (steps)": 2, "Evaluate every (steps)": EVAL_EVERY, "Checkpoint every (steps)": 20}
UI_TIMEOUT_MS = 30_000  # a click's answer, on a 2-core runner that is also training (5 s is Playwright's default)
TRAINING_TIMEOUT_MS = 240_000  # a cold start of the training process on a busy 2-core runner
CHAT_SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
MESSAGE = "hey! are you around this weekend?"
REPORT_EXAMPLES = "Include side-by-side examples (quotes your private chats)"


@pytest.fixture(scope="module")
def browser():
    clear_old_failures()
    with patient_chromium(UI_TIMEOUT_MS) as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(users={TOKEN: "alice"}) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


@pytest.fixture
def studio(isolated_data_dir):
    demo = app.build_app()
    url = launch(demo)
    yield url
    demo.close()


@contextmanager
def kept_on_failure(page, name: str):
    try:
        yield
    except BaseException:
        save_failure(page, name)
        raise


def test_upload_train_watch_reload_chat_export_and_push(page, studio, hub):
    page.goto(studio)
    with kept_on_failure(page, "data"):
        saved = build_examples(page)
    with kept_on_failure(page, "train"):
        run_name = train_and_watch(page, saved)
    with kept_on_failure(page, "chat"):
        chat(page, run_name)
    with kept_on_failure(page, "report"):
        persona_report(page, run_name)
    with kept_on_failure(page, "export"):
        export_and_push(page, run_name, hub)


def build_examples(page) -> str:
    page.locator("input[type=file]").first.set_input_files(SAMPLE)
    expect(page.get_by_text("Facebook Messenger / Instagram (6 files)")).to_be_visible()
    expect(page.get_by_text("5 threads, 813 text messages")).to_be_visible()
    expect(page.get_by_label("Which participant are you?")).to_have_value("Sam Rivera (339)")

    page.get_by_label("Preview with the tokenizer of").fill("offline-tiny")  # offline-small would download 93 MB
    page.get_by_role("button", name="Build training examples").click()
    saved = page.get_by_label("Saved for training")
    expect(saved).to_have_value(re.compile(r"datasets/.+\.jsonl$"))
    expect(page.get_by_text("245 examples")).to_be_visible()
    expect(page.get_by_text("217 train / 28 validation")).to_be_visible()

    table = page.get_by_role("grid", name="Examples (first 500)")
    expect(table).to_have_attribute("aria-rowcount", "246")  # a header row + all 245 examples
    expect(table.get_by_role("columnheader", name="you replied")).to_be_visible()
    # The first example, rendered the way the model sees it: the reply learned, the context not.
    first_prompt, first_reply = (_words(table.get_by_test_id(f"cell-0-{column}").inner_text()) for column in (1, 2))
    rendering = block(page, "Green = learned")
    trained = _words(" ".join(rendering.locator(".token.highlighted").all_inner_texts()))
    context = _words(" ".join(rendering.locator(".text.unlabeled").all_inner_texts()))
    assert first_reply and trained.startswith(first_reply), (first_reply, trained)
    assert first_prompt in context and first_reply not in context
    screenshot(page, "data")
    memory = Path(saved.input_value()).with_suffix(".memory")
    deadline = time.monotonic() + 60  # indexed once the answer is on the page: the Chat tab finds it ready
    while is_pending(memory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (memory / "vectors.npz").is_file()
    return saved.input_value()


def _words(text: str) -> str:
    return " ".join(text.split())


def train_and_watch(page, saved: str) -> str:
    panel = open_tab(page, "2 · Train")
    choose(page, "Recipe", "Offline demo")
    expect(page.get_by_label("Model: Hub id, local folder, or offline-tiny")).to_have_value("offline-tiny")
    expect(page.get_by_label("Training data (from the Data tab)")).to_have_value(saved)
    for label, value in SMALL_RUN.items():
        panel.get_by_label(label, exact=True).fill(str(value))
    panel.get_by_text("Advanced", exact=True).click()
    for label, value in FREQUENT_LOGS.items():
        panel.get_by_label(label, exact=True).fill(str(value))
    page.get_by_role("button", name="Start training").click()

    watching = page.get_by_label("Watching run")
    expect(watching).to_have_value(re.compile(r"^offline-tiny-"))
    run_name = watching.input_value()
    first_step = wait_for_step(page, lambda step: step >= 2)
    first_plot = loss_drawing(page)
    # A later look, past two evaluations: the eval loss must show up as a curve of its own.
    later_step = wait_for_step(page, lambda step: step > max(first_step, 2 * EVAL_EVERY + 1))
    later_plot = loss_drawing(page)
    assert later_plot["lines"][0]["path"] != first_plot["lines"][0]["path"], "the training loss curve did not grow"
    assert len(later_plot["lines"]) == 2, f"expected a train and an eval curve, got {later_plot['lines']}"
    expect(page.get_by_text(re.compile(rf"^{re.escape(run_name)}: running"))).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^step \d+ / {TRAIN_STEPS} \(\d+%\) · ETA"))).to_be_visible()
    screenshot(page, "train")

    # A reloaded page (or a second browser) re-attaches to the live run and keeps following it.
    page.reload()
    panel = open_tab(page, "2 · Train")
    expect(page.get_by_label("Watching run")).to_have_value(run_name)
    expect(page.get_by_text(re.compile(rf"^{re.escape(run_name)}: running"))).to_be_visible()
    # ...and the form shows that run's settings, not the default recipe's.
    for label, value in SMALL_RUN.items():
        expect(panel.get_by_label(label, exact=True)).to_have_value(str(value))
    expect(panel.get_by_label("Model: Hub id, local folder, or offline-tiny", exact=True)).to_have_value("offline-tiny")
    wait_for_step(page, lambda step: step > later_step)

    completed = page.get_by_text(re.compile(rf"^{re.escape(run_name)}: completed"))
    expect(completed).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_text("Saved model:")).to_be_visible()
    assert progress_step(page) == TRAIN_STEPS
    return run_name


def loss_drawing(page) -> dict:
    drawing = plot_drawing(plot(page, "Loss"))
    drawing["lines"] = [line for line in drawing["lines"] if line["path"]]  # a series with no point yet draws nothing
    assert drawing["lines"], "no loss curve drawn"
    assert all(line["colour"] for line in drawing["lines"]), f"a curve is drawn without a colour: {drawing['lines']}"
    # A numeric axis has a few round ticks; categories would label every loss value ("6.5598306656").
    assert all(re.fullmatch(r"-?\d+(\.\d{1,2})?", tick) for tick in drawing["axes"]["value"]), drawing["axes"]
    return drawing


def wait_for_step(page, reached, timeout: float = TRAINING_TIMEOUT_MS / 1000) -> int:
    """Poll the progress line the way a user glances at it; the page itself refreshes every 2 s."""
    deadline = time.monotonic() + timeout
    step = progress_step(page)
    while not reached(step):
        assert time.monotonic() < deadline, f"the progress line stayed at step {step}"
        page.wait_for_timeout(250)
        step = progress_step(page)
    return step


def chat(page, run_name: str) -> None:
    open_tab(page, "3 · Chat")
    choose(page, CHAT_SOURCE, run_name)
    page.get_by_text("Decoding", exact=True).click()
    page.get_by_label("Creative", exact=True).check()
    page.get_by_label("Seed (blank = random)").fill("0")  # sampled, yet the same reply every time
    tuned = block(page, "Fine-tuned: texts like you")
    _record_reply_lengths(tuned)
    page.get_by_placeholder("Text something…").fill(MESSAGE)
    page.get_by_role("button", name="Send").click()
    speed = page.get_by_text(re.compile(r"^\d+ tokens in .* tokens/s"))
    expect(speed).to_be_visible(timeout=60_000)
    reply = tuned.get_by_test_id("bot").all_inner_texts()
    assert reply and "".join(reply).strip(), "no reply bubble appeared"
    seen = [length for length in page.evaluate("window.replyLengths") if length]
    assert len(seen) >= 2 and seen == sorted(seen), f"the reply did not stream in: lengths seen {seen}"

    # Side by side: the same message answered by the tuned model and by the base model.
    page.get_by_text("Clear", exact=True).click()  # the button under the chat, not the chatbot's own icon
    expect(tuned.get_by_test_id("bot")).to_have_count(0)
    page.get_by_label("Side by side with the base model").check()
    base = block(page, "Base model (same weights, adapter off)")
    expect(base).to_be_visible()
    page.get_by_placeholder("Text something…").fill(MESSAGE)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text(re.compile(r"^fine-tuned: \d+ tokens.* · base: \d+ tokens"))).to_be_visible(timeout=60_000)
    assert tuned.get_by_test_id("bot").all_inner_texts() == reply  # seeded: the same tuned reply again
    base_reply = base.get_by_test_id("bot").all_inner_texts()
    assert base_reply and base_reply != reply
    assert base.get_by_test_id("user").inner_text() == MESSAGE
    screenshot(page, "chat")


def _record_reply_lengths(chatbot) -> None:
    """Note the length of the shown reply every time the page changes it, to see it grow."""
    chatbot.evaluate(
        """box => {
            window.replyLengths = [];
            new MutationObserver(() => {
                const text = Array.from(box.querySelectorAll('[data-testid=bot]')).map(b => b.innerText).join('\\n');
                const seen = window.replyLengths;
                if (seen[seen.length - 1] !== text.length) seen.push(text.length);
            }).observe(box, {subtree: true, childList: true, characterData: true});
        }"""
    )


def persona_report(page, run_name: str) -> None:
    panel = open_tab(page, "4 · Report")
    choose(page, "Run to report on", run_name)
    expect(page.get_by_text("No report for this run yet: press Run report.")).to_be_visible()
    panel.get_by_role("spinbutton", name="Held-out replies to use (at most)").fill("6")
    panel.get_by_role("spinbutton", name="Max new tokens").fill("16")
    page.get_by_label(REPORT_EXAMPLES).check()
    page.get_by_role("button", name="Run report").click()
    expect(page.get_by_text(re.compile(rf"^Report of {re.escape(run_name)} on 6 held-out replies"))).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )
    for heading in ("Held-out loss", "Does it sound like you?", "Texting habits", "Degeneracy check"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"^Person-specific gap \(drop on you minus drop on the others\)"))
    ).to_be_visible()
    lengths = plot_drawing(plot(page, "Reply length"))
    assert len({line["colour"] for line in lengths["lines"] if line["path"]}) == 3, lengths  # you, tuned, base
    bars = plot(page, "Texting habits").locator("g.mark-rect path")
    assert bars.count() >= 3, "no habit bars drawn"
    examples = page.get_by_role("heading", name="Side by side (held-out messages, picked at random)")
    expect(examples).to_be_visible()
    screenshot(page, "report")
    page.get_by_label(REPORT_EXAMPLES).uncheck()  # the private text goes away; the numbers stay
    expect(examples).to_be_hidden()
    expect(page.get_by_role("heading", name="Held-out loss")).to_be_visible()


def export_and_push(page, run_name: str, hub: HubServer) -> None:
    open_tab(page, "5 · Export")
    choose(page, "Run to export", run_name)
    expect(page.get_by_text(re.compile(r"^Sizes: adapter .* MB, merged .* MB"))).to_be_visible()
    page.get_by_label(MERGED).check()
    page.get_by_role("button", name="Export", exact=True).click()
    exported = page.get_by_text(re.compile(r"^Exported to .*-merged"))
    expect(exported).to_be_visible(timeout=60_000)
    folder = Path(re.search(r"Exported to (\S+)", exported.inner_text()).group(1))
    assert (folder / "config.json").is_file() and (folder / "README.md").is_file()

    page.get_by_text("Push to the Hugging Face Hub", exact=True).click()
    page.get_by_label("Repository (you/name)").fill("alice/sam-bot")
    page.get_by_label("Token (write access)").fill(TOKEN)
    page.get_by_role("button", name="Export and push").click()
    link = page.get_by_role("link", name="alice/sam-bot")
    expect(link).to_be_visible(timeout=60_000)
    assert link.get_attribute("href") == f"{hub.url}/alice/sam-bot"
    expect(page.get_by_text("Pushed privately to")).to_be_visible()
    pushed = hub.state.repo("alice/sam-bot")
    assert pushed is not None and pushed.private and "config.json" in pushed.files
    expect(page.get_by_label("Token (write access)")).to_have_attribute("type", "password")
    assert TOKEN not in page.locator("body").inner_text()
    screenshot(page, "export")


@pytest.mark.parametrize(
    "name, content, complaint",
    [
        ("message_1.json", b'{"participants": [{"name": "A"}], "messages": [{"sender_na', "looks truncated"),
        ("photo.bin", bytes(range(256)) * 8, "binary file"),
    ],
    ids=["truncated-json", "binary-file"],
)
def test_a_bad_upload_shows_a_readable_error_naming_the_file(page, studio, tmp_path, name, content, complaint):
    garbage = tmp_path / name
    garbage.write_bytes(content)
    page.goto(studio)
    with kept_on_failure(page, f"bad-upload-{name}"):
        page.locator("input[type=file]").first.set_input_files(garbage)
        toast = page.get_by_test_id("toast-text")
        expect(toast).to_contain_text(complaint)
        message = toasts(page)[0]
        assert message.startswith(f"{name}: "), message
        assert "Traceback" not in message and 'File "' not in message
        assert "Detected" not in page.locator("main").inner_text()
