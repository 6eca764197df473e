"""Data tab: upload an export, say who you are, shape examples, and see exactly what the model learns."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from training import templates
from training.cancel import cancellable
from training.chat.memory import build_if_pending, memory_path, remember_prepared
from training.data import formats, persona
from training.data.collector import collector_paused
from training.data.manifest import manifest_path
from training.data.shaping import ShapingOptions
from training.models import OFFLINE_SMALL, fetch_steps, load_tokenizer
from training.paths import subdir, timestamped
from training.settings import coerce_fields

from .common import Owner, owner_only, shows_user_errors
from .fields import setting_widget
from .knowledge_panel import build_knowledge_panel

SEPARATORS = {"new line": "\n", "| (pipe, seed 000)": "|", "space": " "}
PREVIEW_ROWS = 500  # rows shown in the examples table
PREVIEW_CHARS = 300  # characters of each message shown in the table (the whole row is one slider away)
STATS_SAMPLE = 2000  # rows tokenized for the length statistics: enough for the percentiles, ~1 s on a CPU


@dataclass
class DataTab:
    dataset_path: gr.Textbox  # the saved training JSONL, handed to the Train tab
    system_prompt: gr.Textbox


def build_data_tab(
    owner: Owner | str | None = None,
) -> DataTab:  # long: the tab's layout, then events that close over it
    studio = owner_only(owner)
    imported = gr.State(None)
    prepared = gr.State(None)
    gr.Markdown(
        "Drop in your chat export (Facebook Messenger or Instagram folder/zip, WhatsApp `.txt`/zip, "
        "Telegram `result.json`, DiscordChatExporter JSON) or a data set (JSONL/CSV/text). "
        "Try `samples/sam_messenger_export.zip` if you have none at hand."
    )
    files = gr.File(label="Chat export or data set", file_count="multiple", type="filepath")
    import_summary = gr.Markdown()
    steps = Cancellations()
    with gr.Accordion("Knowledge files: what you know and write about, as Q&A (seed 003)", open=False):
        build_knowledge_panel(studio, steps)
    with gr.Row():
        me = _widget("me", gr.Dropdown, choices=[], interactive=True, scale=2)
        exclude = _widget("exclude_threads", gr.Dropdown, choices=[], multiselect=True, scale=3)
    with gr.Row():
        separator = _widget("separator", gr.Dropdown, choices=list(SEPARATORS), value="new line")
        gap = _widget("gap_minutes", gr.Slider, minimum=5, maximum=24 * 60, step=5)
        context = _widget("context_turns", gr.Slider, minimum=1, maximum=20, step=1)
    system_prompt = _widget("system_prompt")
    with gr.Accordion("More filters", open=False):
        with gr.Row():
            include_groups = _widget("include_groups")
            name_prefix = _widget("name_prefix_in_groups")
            dedup = _widget("dedup")
            scrub_pii = _widget("scrub_pii")
        with gr.Row():
            since = _widget("start", gr.Textbox, placeholder="any")
            until = _widget("end", gr.Textbox, placeholder="any")
            min_chars = _widget("min_chars")
            max_chars = _widget("max_chars")
            val_fraction = _widget("val_fraction", gr.Slider, minimum=0, maximum=0.5, step=0.01)
    with gr.Row():
        preview_model = gr.Textbox(label="Preview with the tokenizer of", value=OFFLINE_SMALL, scale=3)
        max_length = gr.Number(label="Max length (tokens)", value=512, precision=0, scale=1)
    with gr.Row():
        build = gr.Button("Build training examples", variant="primary", scale=4)
        cancel = gr.Button("Cancel", scale=1)
    summary = gr.Markdown()
    dataset_path = gr.Textbox(label="Saved for training", interactive=False)
    with gr.Row():
        histogram = gr.BarPlot(x="tokens", y="examples", title="Example length (tokens, bucket start)", scale=3)
        dropped = gr.Dataframe(headers=["dropped because", "count"], label="Not trained on", scale=2)
    length_report = gr.Markdown()
    examples = gr.Dataframe(
        label="Examples (first 500)", wrap=True, max_height=420, column_widths=["10%", "45%", "45%"]
    )
    with gr.Row():
        example_index = gr.Slider(0, 1, value=0, step=1, label="Example shown exactly as the model sees it")
    rendered = gr.HighlightedText(
        label="Green = learned (your reply); grey = context the model reads but is not trained on",
        color_map={"trained": "green", "cut off": "red"},
        show_legend=True,
    )

    def on_upload(paths, request: gr.Request):
        with steps.running(request.session_hash), collector_paused():
            return _on_upload(paths)

    upload_event = files.change(
        studio(shows_user_errors(on_upload)),
        inputs=files,
        outputs=[imported, import_summary, me, exclude],
        api_name="import_files",
    )
    shaping = {
        imported,
        me,
        exclude,
        separator,
        gap,
        context,
        system_prompt,
        include_groups,
        name_prefix,
        dedup,
        scrub_pii,
        since,
        until,
        min_chars,
        max_chars,
        val_fraction,
        preview_model,
        max_length,
    }

    def on_build(values: dict, request: gr.Request, progress=gr.Progress()):
        if values[imported] is None:
            raise gr.Error("Upload a chat export or data set first.")
        for step in fetch_steps(values[preview_model]):  # offline-small's first use, before anything is saved
            progress(None, desc=step)
        chosen = {
            "me": values[me] or "",
            "separator": SEPARATORS[values[separator]],
            "gap_minutes": values[gap],
            "context_turns": values[context],
            "system_prompt": values[system_prompt],
            "name_prefix_in_groups": values[name_prefix],
            "exclude_threads": values[exclude] or [],
            "include_groups": values[include_groups],
            "start": values[since],
            "end": values[until],
            "min_chars": values[min_chars],
            "max_chars": values[max_chars],
            "dedup": values[dedup],
            "scrub_pii": values[scrub_pii],
            "val_fraction": values[val_fraction],
        }
        options = ShapingOptions(**coerce_fields(ShapingOptions, chosen, "Data tab"))
        # The collector paused for the whole step, as the CLI's prepare runs: the imported export's
        # million objects are alive throughout, and each full collection would walk all of them.
        with steps.running(request.session_hash), collector_paused():
            return _build(values[imported], options, values[preview_model], int(values[max_length] or 512))

    build_event = build.click(
        studio(shows_user_errors(on_build)),
        inputs=shaping,
        outputs=[prepared, summary, dataset_path, histogram, dropped, length_report, examples, example_index, rendered],
        api_name="build_examples",
    )

    # Once the answer is on the page, not before: a big export's index takes longer than its examples,
    # and indexing alongside the answer slowed it by ~1-2 s on the 1M-message benchmark export.
    build_event.success(studio(_index_memory_later), inputs=dataset_path, api_name=False, show_progress="hidden")

    def on_cancel(request: gr.Request):
        steps.cancel(request.session_hash)
        return "Cancelled: nothing was saved."

    cancel.click(studio(on_cancel), outputs=summary, cancels=[upload_event, build_event], api_name="cancel_step")
    example_index.change(
        studio(shows_user_errors(_render)),
        inputs=[prepared, example_index, preview_model, max_length],
        outputs=rendered,
        api_name="show_example",
    )
    return DataTab(dataset_path=dataset_path, system_prompt=system_prompt)


class Cancellations:
    """What the Cancel button stops: the step each browser session is running now.

    Gradio's `cancels` only stops waiting for a step; the work would run on in its thread. The
    step runs inside training.cancel.cancellable, so its loops stop at the next file,
    conversation or batch once the event is set, and nothing half-done is saved.
    """

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, session: str | None) -> Iterator[None]:
        event = threading.Event()
        with self._lock:
            self._events[session or ""] = event
        try:
            with cancellable(event):
                yield
        finally:
            with self._lock:
                if self._events.get(session or "") is event:
                    del self._events[session or ""]

    def cancel(self, session: str | None) -> None:
        with self._lock:
            event = self._events.get(session or "")
        if event is not None:
            event.set()


def _on_upload(paths: list[str] | None):
    if not paths:
        return None, "", gr.update(choices=[], value=None), gr.update(choices=[], value=[])
    result = formats.load(paths)
    people = persona.participants(result)
    threads = sorted(result.conversations, key=lambda c: -len(c.messages))
    thread_choices = [
        (f"{c.title} ({len(c.messages)} messages{', group' if c.is_group else ''})", c.id) for c in threads
    ]
    return (
        result,
        _import_report(result),
        gr.update(choices=[(f"{name} ({count})", name) for name, count in people], value=persona.guess_me(result)),
        gr.update(choices=thread_choices, value=[]),
    )


def _import_report(result) -> str:
    detected = ", ".join(f"{label} ({n} file{'s' if n != 1 else ''})" for label, n in result.formats.items())
    lines = [
        f"**Detected:** {detected}",
        f"**{len(result.conversations)} threads, {result.message_count:,} text messages**"
        + (f", {len(result.documents)} raw-text chunks" if result.documents else ""),
    ]
    if result.dropped:
        lines.append(
            "Not text, never trained on: " + ", ".join(f"{n:,} {why}" for why, n in result.dropped.most_common())
        )
    if result.skipped_files:
        lines.append(f"Skipped {len(result.skipped_files):,} attachment or non-text files.")
    lines += [f"⚠️ {warning}" for warning in result.warnings]
    return "\n\n".join(lines)


def _index_memory_later(saved: str) -> None:
    """Index the Memory of the data set Build just saved, in the background (the Chat tab finds it ready)."""
    if saved:
        folder = memory_path(saved)
        threading.Thread(target=build_if_pending, args=(folder,), name="memory-index", daemon=True).start()


def _widget(field: str, widget=None, **options) -> gr.components.Component:
    return setting_widget(ShapingOptions, field, widget, **options)


def _build(result, options: ShapingOptions, preview_model: str, max_length: int):
    prepared = persona.prepare(result, options)
    tokenizer = load_tokenizer(preview_model)
    templates.ensure_chat_template(tokenizer)
    rows = prepared.rows
    stats = templates.length_stats(tokenizer, rows[:STATS_SAMPLE], max_length)
    first_row = templates.render_loss_mask(tokenizer, rows[0], max_length)
    # Saved last: a step cancelled (or failing) before this point leaves no data set behind.
    train_path, _ = persona.save(prepared, subdir("datasets") / f"{timestamped(options.me)}.jsonl")
    memory = remember_prepared(prepared, train_path)  # the Chat tab's Memory: the training rows' exchanges only
    s = prepared.summary
    report = (
        f"**{s['examples']:,} examples** ({s['train']:,} train / {s['validation']:,} validation) "
        f"from {s['conversations']:,} conversations in {s['threads']:,} threads."
    )
    if "pii_replaced" in s:
        report += "\n\nPII replaced: " + (
            ", ".join(f"{n} {kind}" for kind, n in s["pii_replaced"].items()) or "none found"
        )
    report += (
        f"\n\nThese settings are saved beside the examples (`{manifest_path(train_path).name}`): "
        "training and chat build their prompts the same way from them."
    )
    if memory is not None:
        report += (
            f"\n\nYour past replies are being indexed for the Chat tab's Memory (`{memory.name}`, training "
            "conversations only); it stays in the data folder."
        )
    # Numeric bucket starts, so the bars sort by length rather than as text ("108" before "12").
    bars = pd.DataFrame(
        {"tokens": [int(lo) for lo, _, _ in stats["histogram"]], "examples": [n for *_, n in stats["histogram"]]}
    )
    dropped = pd.DataFrame(list(s["dropped"].items()), columns=["dropped because", "count"])
    return (
        prepared,
        report,
        str(train_path),
        bars,
        dropped,
        _length_report(stats, max_length, len(rows)),
        _examples_table(prepared),
        gr.update(maximum=max(len(rows) - 1, 1), value=0),
        first_row,
    )


def _length_report(stats: dict, max_length: int, total: int) -> str:
    sampled = f" (from the first {stats['count']:,} of {total:,})" if stats["count"] < total else ""
    text = (
        f"Tokens per example{sampled}: median {stats['median']:.0f}, 90th percentile {stats['p90']:.0f}, "
        f"max {stats['max']:,}; {stats['trained_tokens']:,} tokens of your replies to learn from."
    )
    if stats["over_max"]:
        text += (
            f"\n\n⚠️ {stats['over_max']:,} examples are longer than the max length of {max_length} tokens and will be "
            "cut: raise the max length, or keep fewer earlier turns."
        )
    return text


def _examples_table(prepared) -> pd.DataFrame:
    records = []
    for split, rows in (("train", prepared.train), ("validation", prepared.validation)):
        for row in rows:
            if len(records) >= PREVIEW_ROWS:
                break
            if "text" in row:
                records.append({"split": split, "they said": "(raw text)", "you replied": _shortened(row["text"])})
            else:
                records.append(
                    {
                        "split": split,
                        "they said": _shortened(row["prompt"][-1]["content"]),
                        "you replied": _shortened(row["completion"][0]["content"]),
                    }
                )
    return pd.DataFrame(records, columns=["split", "they said", "you replied"])


def _shortened(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _render(prepared, index, preview_model, max_length):
    if prepared is None:
        return None
    rows = prepared.rows
    row = rows[min(int(index), len(rows) - 1)]
    tokenizer = load_tokenizer(preview_model)
    templates.ensure_chat_template(tokenizer)
    return templates.render_loss_mask(tokenizer, row, int(max_length or 512))
