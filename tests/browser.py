"""Driving the app in a real Chromium with Playwright: finding Gradio widgets the way a user does
(by their visible labels) and saving screenshots for CI's artifacts.

Chromium comes from Debian (`scripts/test.sh` installs it); `playwright install` cannot download
browsers on these machines. Without it the browser tests skip, except under CI, where a browser
test that silently skips would hide a broken UI.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("TALKLIKE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Only the app on 127.0.0.1 resolves: the test can never reach the internet by accident.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
WIDTH = 1280
ARTIFACTS = ROOT / "test-artifacts"


def require_chromium() -> None:
    """Skip with the reason when there is no browser to drive; under CI, fail instead."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -r requirements-dev.txt)"
    if problem is None and not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = (
            f"no Chromium at {CHROMIUM} (run scripts/test.sh, or apt-get install chromium, or set TALKLIKE_CHROMIUM)"
        )
    if problem is None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"browser test cannot run under CI: {problem}", pytrace=False)
    pytest.skip(problem)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def patient_chromium(timeout_ms: int) -> Iterator:
    """Chromium for a test module, with Playwright's expect() waiting up to `timeout_ms` (a busy 2-core
    runner answers slowly); Playwright's default (5 s) comes back after, for any other browser test."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=timeout_ms)
    try:
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            yield chromium
            chromium.close()
    finally:
        expect.set_options(timeout=5_000)


def open_tab(page, name: str):
    """Switch tabs; returns the tab's panel, where labels are unique (two tabs both ask for a max length)."""
    page.get_by_role("tab", name=name).click()
    return page.get_by_role("tabpanel")  # role queries skip hidden elements: only the open panel


def block(page, label: str):
    """The Gradio block (chatbot, plot, file, ...) whose floating label reads `label`."""
    # Blocks nest (a row's block holds its children's): the last match in document order is the innermost.
    return page.locator(".block").filter(has=page.get_by_test_id("block-label").filter(has_text=label)).last


def choose(page, label: str, option: str) -> None:
    """Pick `option` (a substring of its text) in the dropdown labelled `label`."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option").filter(has_text=option).first.click()


def toasts(page) -> list[str]:
    return page.get_by_test_id("toast-text").all_inner_texts()


def progress_step(page) -> int:
    """The step the Train tab's progress line shows ("step 12 / 40 ..."), or -1 before it shows one."""
    texts = page.locator("p").filter(has_text=re.compile(r"^step \d+ / \d+")).all_inner_texts()
    return int(re.match(r"step (\d+)", texts[0]).group(1)) if texts else -1


def plot(page, title: str):
    """A Gradio plot (Vega, drawn as SVG) found by the title drawn on it."""
    return page.locator(".vega-embed").filter(
        has=page.locator(".role-title text").filter(has_text=re.compile(f"^{re.escape(title)}$"))
    )


def plot_drawing(plot_locator) -> dict:
    """What a plot shows: its lines (SVG path and colour) and the tick labels of each axis, by axis title."""
    return plot_locator.evaluate(
        """plot => {
            const axes = {};
            for (const axis of plot.querySelectorAll('g.role-axis')) {
                const title = axis.querySelector('.role-axis-title text');
                axes[title ? title.textContent : ''] = Array.from(axis.querySelectorAll('.role-axis-label text'), t => t.textContent);
            }
            const lines = Array.from(plot.querySelectorAll('g.mark-line path'),
                                     p => ({path: p.getAttribute('d'), colour: p.getAttribute('stroke')}));
            return {lines, axes};
        }"""
    )


def screenshot(page, name: str) -> Path:
    """A full-page picture for CI's artifacts (test-artifacts/). The README's pictures come from a
    real offline-small run instead (scripts/readme_screenshots.py), not from this random model."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def clear_old_failures() -> None:
    for stale in ARTIFACTS.glob("*-failure.*"):  # left by an earlier failing run; would mislead
        stale.unlink()


def save_failure(page, name: str) -> None:
    """What the page showed when a step failed, for whoever reads CI's artifacts."""
    from playwright.sync_api import Error as PlaywrightError

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        (ARTIFACTS / f"{name}-failure.html").write_text(page.content(), encoding="utf-8")
    except PlaywrightError as exc:  # the page may be gone; the original failure matters more
        print(f"no failure screenshot for {name}: {exc}")
