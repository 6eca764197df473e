"""The blind test page: a real held-out conversation, two replies (the person's and the bot's) as A
and B, and one vote per conversation. The view only; counting is training/report/blind.py's.

What a visitor's browser gets: the conversation and the two texts. Which one is real, the voter
id and the item on screen stay in server-side state, and the vote goes to the server, which
says afterwards whether the pick was right. No visitor ever sees a tally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from components.common import shows_user_errors
from components.limits import visitor_address
from training.chat.generate import split_bubbles
from training.report.blind import BallotBox, Item

NOTICE = (
    "### Which one is really them?\n"
    "Below is part of a real conversation and two replies to its last message: one is what the person "
    "really sent, the other was written by a chatbot trained on their texts. Pick the one you think is real. "
    "These are real messages, shown with the person's permission; your picks are counted anonymously and "
    "nobody sees anyone else's."
)
CHOICES = ["A", "B"]


@dataclass
class BlindTestTab:
    show_next: Callable  # the first item for this visitor: app.py runs it on page load
    views: list


def build_blind_test_tab(ballot: BallotBox) -> BlindTestTab:
    """The page's widgets and events inside the caller's Tab or Blocks."""
    gr.Markdown(NOTICE)
    voter = gr.State(None)  # issued by the server on first use, kept server-side with the session
    shown = gr.State(None)  # {"item": id, "real_first": bool}: never sent to the browser
    progress = gr.Markdown()
    conversation = gr.Chatbot(label="The conversation", height=320, buttons=[])
    with gr.Row(equal_height=True):
        reply_a = gr.Textbox(label="Reply A", interactive=False, lines=2)
        reply_b = gr.Textbox(label="Reply B", interactive=False, lines=2)
    pick = gr.Radio(CHOICES, label="Which reply is the real one?")
    vote_button = gr.Button("Vote", variant="primary")
    verdict = gr.Markdown()
    views = [voter, shown, progress, conversation, reply_a, reply_b, pick]

    def show_next(voter_id: str | None):
        voter_id = voter_id or ballot.new_voter()
        item = ballot.next_item(voter_id)
        if item is None:
            return (
                voter_id,
                None,
                f"You have voted on all {len(ballot.items)} conversations. Thank you!",
                [],
                "",
                "",
                gr.update(value=None, interactive=False),
            )
        first, second = _order(ballot, voter_id, item)
        return (
            voter_id,
            {"item": item.id, "real_first": BallotBox.real_first(voter_id, item)},
            f"Conversation {ballot.voted_on(voter_id) + 1} of {len(ballot.items)}",
            _turns(item),
            first,
            second,
            gr.update(value=None, interactive=True),
        )

    @shows_user_errors
    def cast(choice: str | None, voter_id: str | None, on_screen: dict | None, request: gr.Request):
        if on_screen is None or voter_id is None:
            raise gr.Error("Nothing to vote on: reload the page.")
        if choice not in CHOICES:
            raise gr.Error("Pick A or B first.")
        picked_real = (choice == "A") == on_screen["real_first"]
        right = ballot.vote(voter_id, visitor_address(request), on_screen["item"], "real" if picked_real else "bot")
        told = f"✅ Right: {choice} was the real one." if right else f"🤖 Fooled: {choice} was the chatbot."
        return told, *show_next(voter_id)

    vote_button.click(cast, inputs=[pick, voter, shown], outputs=[verdict, *views], api_name="blind_vote")
    # What the page does on load, callable as an API too: a script votes the way a browser does,
    # one session at a time, and gets no more than a browser would.
    next_button = gr.Button("Next", visible=False)
    next_button.click(show_next, inputs=voter, outputs=views, api_name="blind_next")
    return BlindTestTab(show_next, views)


def _order(ballot: BallotBox, voter: str, item: Item) -> tuple[str, str]:
    real, bot = (_bubbles(text, ballot.separator) for text in (item.real, item.bot))
    return (real, bot) if BallotBox.real_first(voter, item) else (bot, real)


def _bubbles(text: str, separator: str) -> str:
    """A reply sent as several messages, one per line, as it would appear on a phone."""
    return "\n".join(split_bubbles(text, separator)) if separator else text


def _turns(item: Item) -> list[dict]:
    return [{"role": turn["role"], "content": turn["content"]} for turn in item.context]
