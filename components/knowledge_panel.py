"""Data tab, "Knowledge files": notes, docs and code -> seed 003's Q&A rows, reviewed before they are saved.

Build makes the template rows and, with pairs per document above 0, asks the generator for Q&A
(a progress bar per document); every row is listed with a "keep" box, and Save writes only the kept
ones, with a tenth of the generated pairs held out (training/data/knowledge.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from training.data import generator, knowledge
from training.errors import UserError
from training.models import OFFLINE_SMALL
from training.paths import subdir, timestamped

from .common import shows_user_errors

COLUMNS = ["keep", "#", "kind", "from", "question", "answer"]
SHOWN_CHARS = 400  # of each answer in the table; the whole row is what is saved


@dataclass
class Built:
    """The rows of the last build, kept server-side: the table shows them shortened."""

    rows: list[dict]
    summary: str


def build_knowledge_panel(studio, steps) -> None:  # long: the panel's layout, then events that close over it
    """The panel's widgets and events; `studio` guards owner-only events, `steps` is the tab's Cancellations."""
    built = gr.State(None)
    files = gr.File(
        label="Knowledge files (markdown/text notes, docs, code; folders as zip)",
        file_count="multiple",
        type="filepath",
    )
    with gr.Row():
        as_of = gr.Textbox(label="Code snapshot date ('As of ...')", placeholder="December 2023", scale=1)
        per_document = gr.Slider(
            0,
            generator.MAX_PAIRS_PER_DOCUMENT,
            value=0,
            step=1,
            scale=1,
            label="Generated Q&A pairs per document (the cap; 0 = templates only)",
        )
        source = gr.Textbox(
            label="Generator: model or OpenAI-compatible URL",
            value=OFFLINE_SMALL,
            scale=2,
            info="offline-small runs here; a URL like http://127.0.0.1:8080/v1 (key from "
            "TALKLIKE_GENERATOR_KEY on the server)",
        )
    prompt = gr.Textbox(
        label="Generator prompt ({text}, {n}, {title} are filled in)", value=generator.DEFAULT_PROMPT, lines=5
    )
    with gr.Row():
        build = gr.Button("Build knowledge rows", scale=3)
        save = gr.Button("Save the kept rows", variant="primary", scale=2)
    report = gr.Markdown()
    table = gr.Dataframe(
        headers=COLUMNS,
        datatype=["bool", "number", "str", "str", "str", "str"],
        interactive=True,
        static_columns=[1, 2, 3, 4, 5],
        wrap=True,
        max_height=420,
        label="Review: untick rows to leave out",
    )
    saved = gr.Textbox(label="Knowledge data set (add it in the Train tab with a weight)", interactive=False)

    def on_build(paths, date, pairs, model_or_url, template, request: gr.Request, progress=gr.Progress()):
        with steps.running(request.session_hash):
            result = build_rows(
                paths,
                date,
                int(pairs or 0),
                model_or_url,
                template,
                lambda done, total, name: progress((done, total), desc=f"Q&A for {name}" if name else "done"),
            )
        return result, result.summary, review_table(result.rows), ""

    build.click(
        studio(shows_user_errors(on_build)),
        inputs=[files, as_of, per_document, source, prompt],
        outputs=[built, report, table, saved],
        api_name="build_knowledge",
    )
    save.click(
        studio(shows_user_errors(save_kept)), inputs=[built, table], outputs=[saved, report], api_name="save_knowledge"
    )


def build_rows(paths, as_of: str | None, pairs: int, model_or_url: str, prompt: str, progress=None) -> Built:
    if not paths:
        raise UserError("Knowledge files: upload notes, docs or code first")
    if pairs:
        generator.check_request(pairs, prompt)
    skipped: list[str] = []
    files = knowledge.read_knowledge(paths, skipped)
    rows = knowledge.template_rows(files, as_of)
    lines = [
        f"**{len(files)} files** read" + (f", {len(skipped)} skipped (media, binaries, data sets)" if skipped else "")
    ]
    if pairs:
        ask = generator.make_generator(model_or_url or OFFLINE_SMALL, generator.TOKENS_PER_PAIR * pairs + 32)
        generated, made = generator.generate_pairs(files, ask, pairs, prompt, progress=progress)
        rows += generated
        lines.append(
            f"**{made.pairs} generated pairs** from {made.documents} documents in {made.seconds:.0f} s; "
            f"{made.malformed} answers had no usable pair, {made.over_cap} pairs were over the cap"
        )
    kinds = pd.Series([row["kind"] for row in rows]).value_counts().to_dict() if rows else {}
    lines.append("Rows: " + (", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none"))
    return Built(rows, "\n\n".join(lines))


def review_table(rows: list[dict]) -> pd.DataFrame:
    records = [
        [
            True,
            index,
            row["kind"],
            row["source"],
            row["messages"][0]["content"],
            _shortened(row["messages"][1]["content"]),
        ]
        for index, row in enumerate(rows)
    ]
    return pd.DataFrame(records, columns=COLUMNS)


def kept_rows(built: Built, table: pd.DataFrame) -> list[dict]:
    """The built rows whose "keep" box is still ticked, found by their "#" (the table may be sorted)."""
    if table is None or len(table) == 0:
        return []
    ticked = {int(number) for keep, number in zip(table["keep"], table["#"], strict=True) if _is_ticked(keep)}
    return [row for index, row in enumerate(built.rows) if index in ticked]


def save_kept(built: Built | None, table: pd.DataFrame):
    if built is None:
        raise UserError("Knowledge files: build the rows first")
    rows = kept_rows(built, table)
    if not rows:
        raise UserError("Knowledge files: every row is unticked; keep at least one")
    templates = [row for row in rows if row["kind"] != "qa"]
    pairs = [row for row in rows if row["kind"] == "qa"]
    made = knowledge.build(templates, pairs)
    train_path, val_path = knowledge.save(made, subdir("datasets") / f"{timestamped('knowledge')}.jsonl")
    held = f", {len(made.validation)} Q&A held out in `{val_path.name}`" if val_path else ""
    return str(train_path), f"Saved **{len(made.train)} rows**{held} ({len(built.rows) - len(rows)} left out)."


def _is_ticked(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _shortened(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
