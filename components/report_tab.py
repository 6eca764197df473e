"""Report tab: "how much does it sound like you?", measured on held-out chats the run never trained on.

Runs training.report.build in a worker thread and follows its progress; Stop cancels it. Shows each
number with its sentence, the reply-length distributions overlaid and the texting habits side by
side; the side-by-side examples (private text) only when the box is ticked.
"""

from __future__ import annotations

import queue
import threading

import gradio as gr
import pandas as pd

from training.chat.decoding import PRESETS, preset
from training.chat.memory_prompt import MemorySettings
from training.report import render
from training.report.blind import tally_markdown, votes_of
from training.report.build import ReportOptions, build_report, load_report
from training.report.loss import Cancelled
from training.train.runs import list_runs

from .common import Owner, owner_only, shows_user_errors

INCLUDE = "Include side-by-side examples (quotes your private chats)"
MEMORY = "Also reply with memory (tuned+memory and base+memory: the Chat tab's Memory, from training rows only)"
MAX_ROWS = 500  # held-out replies per report: each is generated twice, so this bounds one click's cost


def build_report_tab(
    owner: Owner | str | None = None,
) -> gr.Dropdown:  # long: the tab's layout, then events that close over it
    studio = owner_only(owner)
    gr.Markdown(
        "How much does a run sound like you? Its replies to held-out conversations (never trained on) are "
        "compared with yours and with the base model's, same prompts, decoding and seed."
    )
    with gr.Row():
        # In owner mode the list arrives with the owner's page load, not in the page config anyone can read.
        run = gr.Dropdown(
            [] if owner else _finished_runs(), value=None, allow_custom_value=True, label="Run to report on", scale=3
        )
        limit = gr.Slider(4, MAX_ROWS, value=50, step=1, label="Held-out replies to use (at most)", scale=2)
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", scale=1)
    with gr.Row():
        decoding = gr.Radio(list(PRESETS), value="Balanced", label="Decoding (same for tuned and base)")
        max_new_tokens = gr.Slider(8, 256, value=64, step=8, label="Max new tokens")
        include = gr.Checkbox(value=False, label=INCLUDE)
        with_memory = gr.Checkbox(value=False, label=MEMORY)
    with gr.Row():
        start = gr.Button("Run report", variant="primary")
        stop = gr.Button("Stop")
    round_note = gr.Markdown()  # a preference round's held-out pairs: accuracy and rewards
    status = gr.Markdown()
    summary = gr.Markdown()
    with gr.Row():
        lengths = gr.LinePlot(
            x="characters",
            y="share of replies",
            color="replies",
            title="Reply length",
            x_title="characters (bucket start)",
            label="Reply length",
        )
        habits = gr.BarPlot(
            x="habit",
            y="share of replies",
            color="replies",
            title="Texting habits",
            sort=None,
            x_label_angle=-40,
            y_lim=[0, 1],
            label="Texting habits",
        )
    details = gr.Markdown()
    examples = gr.Markdown(visible=False)
    shown = [status, summary, lengths, habits, details, examples]

    def run_report(run_name, rows, chosen_seed, style, tokens, quote, remember, progress=gr.Progress()):
        if not run_name:
            raise gr.Error("Choose a run to report on.")
        settings = preset(style, max_new_tokens=int(tokens), seed=int(chosen_seed or 0))
        options = ReportOptions(
            limit=min(int(rows), MAX_ROWS),
            seed=int(chosen_seed or 0),
            include_examples=quote,
            decoding=settings,
            memory=MemorySettings() if remember else None,
        )
        for update in _follow(run_name, options, progress):
            yield (update, *[gr.skip()] * 5) if isinstance(update, str) else _views(update, quote, run_name)

    run.change(studio(shows_user_errors(_saved_report)), inputs=[run, include], outputs=shown, api_name=False)
    run.change(studio(shows_user_errors(preference_round)), inputs=run, outputs=round_note, api_name=False)
    include.change(studio(shows_user_errors(_saved_report)), inputs=[run, include], outputs=shown, api_name=False)
    event = start.click(
        studio(shows_user_errors(run_report)),
        inputs=[run, limit, seed, decoding, max_new_tokens, include, with_memory],
        outputs=shown,
        api_name="persona_report",
        concurrency_limit=1,
    )
    stop.click(None, cancels=[event], api_name=False)
    return run


def preference_round(run_name: str | None) -> str:
    """For a DPO/KTO round, its held-out preference accuracy and rewards; nothing for other runs."""
    from training.train.config import PREFERENCE_METHODS
    from training.train.run_record import read_run

    if not run_name:
        return ""
    record = read_run(run_name)
    if record.config.method not in PREFERENCE_METHODS:
        return ""
    return render.preference_round_markdown(record.config.method, record.metrics())


def _follow(run_name: str, options: ReportOptions, progress):
    """Yield status lines while the report runs in a worker thread, then the report itself.

    A cancelled event (Stop, a closed page) closes this generator: the `finally` tells the worker.
    """
    updates: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def work():
        try:
            updates.put(
                ("done", build_report(run_name, options, lambda f, what: updates.put(("progress", (f, what))), cancel))
            )
        except BaseException as error:  # noqa: BLE001 - handed to the page's thread, which re-raises it
            updates.put(("failed", error))

    worker = threading.Thread(target=work, name="talklike-report", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "progress":
                fraction, what = value
                progress(fraction, desc=what)
                yield f"Working: {what} ({fraction:.0%})"
            elif kind == "done":
                yield value
                return
            else:
                if isinstance(value, Cancelled):
                    yield "Report stopped; nothing was saved."
                    return
                raise value
    finally:
        cancel.set()
        worker.join()


def _views(report: dict, quote: bool, run_dir: str):
    """status, summary, length plot, habits plot, details, examples for a finished report (with the
    blind test's votes so far, which change after the report was made, when the run has some)."""
    seconds = report.get("seconds", {})
    status = (
        f"Report of **{report['run']}** on {report['data']['rows']} held-out replies "
        f"({seconds.get('loss', 0) + seconds.get('generation', 0):.0f} s), saved with the run."
    )
    summary = "\n\n".join(
        [render.header(report), render.loss_markdown(report), render.metrics_markdown(report, "voice")]
    )
    if report.get("mixed_sources"):
        summary += "\n\n" + render.mixed_sources_markdown(report)
    if report.get("memory"):
        summary += "\n\n" + render.memory_markdown(report)
    votes = votes_of(run_dir)
    if votes["votes"]:
        summary += "\n\n" + tally_markdown(votes)
    details = "\n\n".join(render.metrics_markdown(report, section) for section in ("habits", "content", "degeneracy"))
    has_examples = quote and bool(report.get("examples"))
    examples = gr.update(
        value=render.examples_markdown(report["examples"]) if has_examples else "", visible=has_examples
    )
    return (
        status,
        summary,
        pd.DataFrame(render.length_histogram(report)),
        pd.DataFrame(render.habit_bars(report)),
        details,
        examples,
    )


def _saved_report(run_name: str | None, quote: bool):
    """The run's last report, if it has one: picking a run (or reloading the page) shows it again."""
    report = load_report(run_name) if run_name else None
    if report is None:
        empty = pd.DataFrame()
        note = "No report for this run yet: press Run report." if run_name else ""
        return note, "", empty, empty, "", gr.update(value="", visible=False)
    views = list(_views(report, quote, run_name))
    views[0] = f"Last report of **{report['run']}**, made {report['created'].replace('T', ' ')}."
    if quote and not report.get("examples"):
        views[0] += " It holds no examples: run it again with the box ticked to see them."
    return tuple(views)


def _finished_runs() -> list[tuple[str, str]]:
    return [(f"{r['name']} ({r['method']})", r["path"]) for r in list_runs() if r["has_final"]]


def refresh_runs():
    return gr.update(choices=_finished_runs())
