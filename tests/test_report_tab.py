"""The Report tab through Gradio's API: a report from a finished run, examples only when asked, owner mode."""

from __future__ import annotations

import pytest
from gradio_client import Client

import app
from tests.export_runs import adapter_run
from tests.report_runs import on_sam_data, sam_examples
from tests.ui_client import call, launch
from training.report.build import load_report

RUN, INCLUDE = "Run to report on", "Include side-by-side examples (quotes your private chats)"
QUICK = {"Held-out replies to use (at most)": 4, "Max new tokens": 8}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "tab-run")


@pytest.fixture(scope="module")
def studio():
    demo = app.build_app()
    url = launch(demo)
    yield Client(url, verbose=False)
    demo.close()


def plotted(plot) -> list[dict]:
    """The rows a native plot received, as {column: value}."""
    value = plot["value"] if "value" in plot else plot
    return [dict(zip(value["columns"], row)) for row in value["data"]]


def test_report_shows_numbers_sentences_and_plots_but_no_chat_text(studio, run):
    status, summary, lengths, habits, details, examples = call(studio, "/persona_report", **{RUN: str(run), **QUICK})
    assert status.startswith("Report of **tab-run** on 4 held-out replies")
    assert "Person-specific gap" in summary and "### Does it sound like you?" in summary
    assert "### Texting habits" in details and "### Degeneracy check" in details
    assert {row["replies"] for row in plotted(lengths)} == {"you (real)", "tuned", "base"}
    shares = {row["habit"]: row["share of replies"] for row in plotted(habits)}
    assert len(shares) == 21 and all(0 <= share <= 1 for share in shares.values())
    saved = load_report(run)
    assert shares["lowercase start · you (real)"] == saved["plots"]["habits"]["lowercase start"]["real"]
    assert not (examples.get("value") if isinstance(examples, dict) else examples)
    assert "examples" not in saved


def test_examples_are_shown_only_when_ticked(studio, run):
    *_, examples = call(studio, "/persona_report", **{RUN: str(run), **QUICK, INCLUDE: True})
    text = examples["value"] if isinstance(examples, dict) else examples
    assert text.startswith("### Side by side") and text.count("**Example") == 3
    assert load_report(run)["examples"]  # saved with the run, which stays in the data folder


def test_no_run_chosen_is_a_readable_error(studio):
    with pytest.raises(Exception, match="Choose a run to report on"):
        call(studio, "/persona_report", **QUICK)


def test_owner_mode_refuses_the_report_to_visitors(run):
    demo = app.build_app(owner="alice")
    try:
        with pytest.raises(Exception, match="Only alice can train or export"):
            call(Client(launch(demo), verbose=False), "/persona_report", **{RUN: str(run), **QUICK})
    finally:
        demo.close()


def test_a_seq2seq_run_reports_in_the_app_too(studio, tmp_path_factory):
    run = on_sam_data(
        adapter_run(tmp_path_factory, arch="blenderbot"),
        tmp_path_factory,
        sam_examples(tmp_path_factory),
        "tab-seq2seq",
    )
    status, summary, *_ = call(studio, "/persona_report", **{RUN: str(run), **QUICK})
    assert status.startswith("Report of **tab-seq2seq** on 4 held-out replies") and "Person-specific gap" in summary
    assert load_report(run)["model"]["seq2seq"]


def test_the_blind_test_votes_so_far_are_shown_with_the_report(studio, run):
    import json

    from training.report.blind import FOLDER

    (run / FOLDER).mkdir(exist_ok=True)
    votes = [{"item": f"item-{n}", "voter": "v1", "picked": "bot" if n < 2 else "real"} for n in range(4)]
    (run / FOLDER / "votes.jsonl").write_text("".join(json.dumps(v) + "\n" for v in votes))
    try:
        _, summary, *_ = call(studio, "/persona_report", **{RUN: str(run), **QUICK})
    finally:
        (run / FOLDER / "votes.jsonl").unlink()
    assert "**Blind test**: friends picked the bot's reply as the real one in **50%** of 4 votes" in summary


def test_ticking_memory_adds_the_with_memory_rows(studio, run):
    from components.report_tab import MEMORY

    _, summary, *_ = call(studio, "/persona_report", **{RUN: str(run), **QUICK, MEMORY: True})
    assert "### With memory" in summary and "| metric | you | tuned | tuned+memory | base | base+memory |" in summary
    assert load_report(run)["memory"]["exchanges"] == 217  # the sample's training rows, never a held-out one
