"""The README's screenshots, taken in Chromium from a real offline-small run (not the tests' random model).

    python bench/bench_persona.py --corpus sam --recipe talklike      # trains the run (about 8 min on 2 cores)
    python scripts/readme_screenshots.py [--run bench/out/persona/sam/runs/talklike]

The run (its report.json included) is copied into a fresh data folder under the name below, the
studio is started on it, and each tab is driven the way a user would: Data builds the sample
persona's examples previewed with offline-small's tokenizer, Train watches the finished run, Chat
answers one message with the fine-tuned and the base model side by side (before and after training,
same weights, same sampling seed), Report shows the run's persona report, Export shows the run's
sizes. The pictures go to docs/screenshots/. The sample persona is fictional; nothing private shows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import WIDTH, block, choose, launch_chromium, open_tab, plot  # noqa: E402

RUN_NAME = "sam-offline-small"
MESSAGE = "hey! are you around this weekend?"
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"
SHOTS = ROOT / "docs" / "screenshots"
WAIT_MS = 180_000  # a reply or a build on a busy 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "bench/out/persona/sam/runs/talklike")
    parser.add_argument("--tabs", nargs="+", choices=list(TABS), default=list(TABS), help="which pictures to take")
    args = parser.parse_args()
    if not (args.run / "final").is_dir() or not (args.run / "report.json").is_file():
        raise SystemExit(f"{args.run}: expected a finished run with report.json (see this script's docstring)")
    data = Path(tempfile.mkdtemp(prefix="talklike-screens-"))
    shutil.copytree(args.run, data / "runs" / RUN_NAME, ignore=shutil.ignore_patterns("checkpoints"))
    os.environ["TALKLIKE_DATA_DIR"] = str(data)
    os.environ.setdefault("TALKLIKE_MODEL_CACHE", str(Path.home() / ".cache" / "talklike"))  # offline-small, once

    from playwright.sync_api import expect, sync_playwright

    import app

    demo = app.build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, theme=app.THEME)
    expect.set_options(timeout=WAIT_MS)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(url)
            for name in args.tabs:
                TABS[name](page, expect)
                print(f"docs/screenshots/{name}.png", flush=True)
            browser.close()
    finally:
        demo.close()
        shutil.rmtree(data, ignore_errors=True)


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def data_tab(page, expect) -> None:
    page.locator("input[type=file]").first.set_input_files(SAMPLE)
    expect(page.get_by_text("5 threads, 813 text messages")).to_be_visible()
    expect(page.get_by_label("Preview with the tokenizer of")).to_have_value("offline-small")
    page.get_by_role("button", name="Build training examples").click()
    expect(page.get_by_text("217 train / 28 validation")).to_be_visible()
    shoot(page, "data")


def train_tab(page, expect) -> None:
    open_tab(page, "2 · Train")
    choose(page, "Watching run", RUN_NAME)
    expect(page.get_by_text(re.compile(r"^step \d+ / \d+"))).to_be_visible()
    expect(plot(page, "Loss")).to_be_visible()
    shoot(page, "train")


def chat_tab(page, expect) -> None:
    open_tab(page, "3 · Chat")
    choose(page, "Chat with: a finished run, a model folder, a Hub id, or offline-small", RUN_NAME)
    page.get_by_label("Side by side with the base model").check()
    page.get_by_text("Decoding", exact=True).click()
    page.get_by_label("Balanced", exact=True).check()  # greedy decoding loops on a 135M model
    page.get_by_label("Seed (blank = random)").fill("0")
    page.get_by_placeholder("Text something…").fill(MESSAGE)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text(re.compile(r"^fine-tuned: \d+ tokens.* · base: \d+ tokens"))).to_be_visible()
    expect(block(page, "Base model (same weights, adapter off)").get_by_test_id("bot").first).to_be_visible()
    shoot(page, "chat")


def report_tab(page, expect) -> None:
    open_tab(page, "4 · Report")
    choose(page, "Run to report on", RUN_NAME)
    expect(page.get_by_role("heading", name="Held-out loss")).to_be_visible()
    shoot(page, "report")


def export_tab(page, expect) -> None:
    open_tab(page, "5 · Export")
    choose(page, "Run to export", RUN_NAME)
    expect(page.get_by_text(re.compile(r"^Sizes: adapter .* MB, merged .* MB"))).to_be_visible()
    shoot(page, "export")


TABS = {"data": data_tab, "train": train_tab, "chat": chat_tab, "report": report_tab, "export": export_tab}

if __name__ == "__main__":
    main()
