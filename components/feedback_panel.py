"""Feedback in the studio's Chat tab: 👍/👎 on any reply, "✏️ Say it like me", and a review table.

Every judgement goes to the chosen run's feedback file (training/chat/feedback.py), with the prompt
rebuilt as the model saw it (same history, same max_new_tokens cut, and with Memory on the same facts
and past exchanges recalled into the system prompt, so pairs train on the real prompt), the reply and
the decoding settings. Only the studio's Chat tab builds
this panel, and on a shared server only the owner may use it: a visitor never writes to a run, and
never sees its widgets either (they start hidden in owner mode; the owner's page load shows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from training.chat import feedback
from training.errors import UserError

from .common import owner_only, shows_user_errors

TABLE_HEADERS = ["id", "verdict", "column", "message", "reply", "rewrite"]
LIKES = ("Like", "Dislike")  # Gradio draws these two as 👍 / 👎 under each bot bubble


@dataclass
class FeedbackPanel:
    rewrite: gr.Textbox
    summary: gr.Markdown
    table: gr.Dataframe
    owner_view: list  # what only the owner sees: the widgets and both chat columns' 👍 / 👎

    def shown(self, is_owner: bool) -> list:
        """Updates for `owner_view`, sent on each page load in owner mode."""
        widgets, *columns = self.owner_view
        likes = list(LIKES) if is_owner else []
        return [gr.update(visible=is_owner), *(gr.update(feedback_options=likes) for _ in columns)]


def build_feedback_panel(  # long: the panel's layout, then events that close over it
    source, tuned: gr.Chatbot, base: gr.Chatbot, settings_of, settings_inputs: list, owner=None, memory_of=None
) -> FeedbackPanel:
    """Wire likes on both columns, the rewrite box and the review accordion to the run in `source`.

    `settings_of(values)` turns the values dict of `settings_inputs` (the Decoding and Memory panels)
    into DecodingSettings, `memory_of(values)` into the ChatMemory the replies were given (or None).
    With an `owner`, everything starts hidden, 👍 / 👎 included: wire `FeedbackPanel.shown` to page loads.
    """
    with gr.Column(visible=owner is None) as widgets:
        with gr.Row():
            rewrite = gr.Textbox(
                label="✏️ Say it like me",
                scale=6,
                lines=1,
                placeholder="What you would really have answered to the last message",
            )
            rewrite_button = gr.Button("✏️ Save my version", scale=1)
        with gr.Accordion("Feedback (private: stays in the run folder)", open=False):
            summary = gr.Markdown()
            table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True)
            with gr.Row():
                chosen_id = gr.Textbox(label="Judgement id", scale=1)
                new_rewrite = gr.Textbox(label="New rewrite (empty = keep)", scale=3)
                save = gr.Button("Save edit", scale=1)
                delete = gr.Button("Delete", variant="stop", scale=1)
            make_pairs = gr.Button("Make preference pairs from this run's feedback")
            pairs_note = gr.Markdown()
    for column in (tuned, base):  # the like events below make both chatbots likeable; these are their buttons
        column.feedback_options = LIKES if owner is None else ()

    guarded = owner_only(owner)
    listed = [summary, table]

    def asked(values: dict) -> Asked:
        return Asked(settings_of(values), memory_of(values) if memory_of else None)

    def on_tuned_like(values: dict, data: gr.LikeData):
        return _record_like(values[source], values[tuned], "tuned", data, asked(values))

    def on_base_like(values: dict, data: gr.LikeData):
        return _record_like(values[source], values[base], "base", data, asked(values))

    tuned.like(
        guarded(shows_user_errors(on_tuned_like)),
        inputs={source, tuned, *settings_inputs},
        outputs=listed,
        api_name=False,
    )
    base.like(
        guarded(shows_user_errors(on_base_like)),
        inputs={source, base, *settings_inputs},
        outputs=listed,
        api_name=False,
    )

    def on_rewrite(values: dict):
        return ("", *_record_rewrite(values[source], values[tuned], values[rewrite], asked(values)))

    rewriting = dict(inputs={source, tuned, rewrite, *settings_inputs}, outputs=[rewrite, *listed])
    rewrite_button.click(guarded(shows_user_errors(on_rewrite)), api_name="say_it_like_me", **rewriting)
    rewrite.submit(guarded(shows_user_errors(on_rewrite)), api_name=False, **rewriting)
    quiet = owner_only(owner, denied=lambda: ("", []))  # a visitor picking a run sees no error, and no feedback
    source.change(quiet(shows_user_errors(review)), inputs=source, outputs=listed, api_name=False)
    save.click(
        guarded(shows_user_errors(_edit)),
        inputs=[source, chosen_id, new_rewrite],
        outputs=listed,
        api_name="edit_feedback",
    )
    delete.click(
        guarded(shows_user_errors(_delete)), inputs=[source, chosen_id], outputs=listed, api_name="delete_feedback"
    )
    make_pairs.click(
        guarded(shows_user_errors(_make_pairs)), inputs=source, outputs=pairs_note, api_name="feedback_pairs"
    )
    return FeedbackPanel(rewrite, summary, table, [widgets, tuned, base])


# ---- handlers -------------------------------------------------------------------------------------


def run_folder(chosen: str | None) -> Path:
    """The run whose feedback file this is: feedback belongs to a trained run, not to a Hub id."""
    from training.train.run_record import read_run

    if not chosen:
        raise UserError("Pick a finished run under 'Chat with' to give it feedback.")
    try:
        return read_run(chosen).path
    except UserError:
        raise UserError("Feedback is kept per run: pick one of your finished runs under 'Chat with'.") from None


def last_exchange(history: list, index: int | None = None) -> tuple[list[dict], str, list[str]]:
    """(history before the message, the message, the reply's bubbles) for the assistant bubble at
    `index`, or for the last reply when `index` is None."""
    messages = [{"role": m["role"], "content": _text(m["content"])} for m in history or []]
    # The "Memories used" note under a reply is an assistant message too, but nobody said it: the
    # model never saw one (limits.clean_history), and it is neither the reply nor its history.
    said = [not _is_note(m) for m in history or []]
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant" and said[i]]
    index = (replies[-1] if replies else -1) if index is None else index
    if not 0 <= index < len(messages) or messages[index]["role"] != "assistant" or not said[index]:
        raise UserError("No reply to judge yet: send a message first.")
    asked = max((i for i in range(index) if messages[i]["role"] == "user"), default=None)
    if asked is None:
        raise UserError("This reply answers no message.")
    end = asked + 1
    while end < len(messages) and messages[end]["role"] == "assistant":
        end += 1
    before = [m for i, m in enumerate(messages[:asked]) if said[i]]
    bubbles = [m["content"] for i, m in enumerate(messages[asked + 1 : end], asked + 1) if said[i]]
    return before, messages[asked]["content"], bubbles


def _is_note(message: dict) -> bool:
    return isinstance(message.get("metadata"), dict) and bool(message["metadata"].get("title"))


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # gradio_client and Gradio 6 send [{"type": "text", "text": ...}] parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


@dataclass(frozen=True)
class Asked:
    """How the replies were asked for: the Decoding panel's settings and the Memory panel's memory."""

    settings: Any  # DecodingSettings
    memory: Any = None  # ChatMemory, or None with Memory off


def _judgement(chosen: str, history: list, index: int | None, asked: Asked):
    """(run folder, prompt messages as the model saw them, reply) for the bubble at `index`."""
    from training.chat.generate import build_prompt, load_chat_model

    folder = run_folder(chosen)
    before, message, bubbles = last_exchange(history, index)
    model = load_chat_model(folder)  # cached: the model that just answered
    # The chat built its prompt the same way (generate.stream_reply): memories recalled for this message.
    prompt = build_prompt(model, before, message, asked.settings.max_new_tokens, memory=asked.memory)
    return folder, prompt.messages, (model.separator or "\n").join(bubbles)


def _record_like(chosen: str, history: list, column: str, data: gr.LikeData, asked: Asked):
    if data.liked not in (True, False):  # an undo ("") or another option: nothing to record
        return review(chosen)
    index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
    folder, prompt, reply = _judgement(chosen, history, index, asked)
    verdict = "up" if data.liked else "down"
    feedback.record(folder, prompt, reply, column, verdict, decoding=asked.settings.__dict__)
    return review(chosen)


def _record_rewrite(chosen: str, history: list, text: str, asked: Asked):
    if not (text or "").strip():
        raise UserError("✏️ Type what you would really have answered, then save it.")
    folder, prompt, reply = _judgement(chosen, history, None, asked)
    feedback.record(folder, prompt, reply, "tuned", "rewrite", rewrite=text.strip(), decoding=asked.settings.__dict__)
    return review(chosen)


def review(chosen: str | None):
    """The count line and the table of the run's judgements (newest first)."""
    try:
        folder = run_folder(chosen)
    except UserError:
        return "Feedback is kept per finished run: pick one under 'Chat with'.", []
    entries = feedback.read_feedback(folder)
    tally = feedback.counts(entries)
    line = (
        f"**{tally['pairs']} pairs** (rewrites) · {tally['up']} 👍 · {tally['down']} 👎 in "
        f"{folder.name}/{feedback.FILE_NAME}"
    )
    rows = [
        [e["id"], e["verdict"], e["column"], e["prompt"][-1]["content"], e["reply"], e["rewrite"] or ""]
        for e in reversed(entries)
    ]
    return line, rows


def _edit(chosen: str, entry_id: str, rewrite: str):
    if not (entry_id or "").strip():
        raise UserError("Judgement id: copy it from the table's first column.")
    feedback.edit(run_folder(chosen), entry_id.strip(), rewrite=rewrite.strip() or None)
    return review(chosen)


def _delete(chosen: str, entry_id: str):
    if not (entry_id or "").strip():
        raise UserError("Judgement id: copy it from the table's first column.")
    feedback.delete(run_folder(chosen), entry_id.strip())
    return review(chosen)


def _make_pairs(chosen: str) -> str:
    from training.report.pairs import build_pairs, write_pairs

    folder = run_folder(chosen)
    pairs = build_pairs(folder, from_feedback=True)
    path = write_pairs(pairs.rows, folder / "feedback_pairs.jsonl")
    return (
        f"{len(pairs.rows)} pairs written to `{path}`. Train a round: `python -m training train --preset "
        f"preference-round --from-run {folder} --data {path}`, or choose the Preference round recipe."
    )
