"""One reply in the Chat tab, as it streams: the model loading with a clock, the fine-tuned column,
the base column beside it, the speed line, and each address's bound on replies at once.

No widgets here: chat_tab.py builds the page and calls `converse` for Send and Retry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from training.chat import generate
from training.errors import UserError
from training.models import fetch_steps

from .limits import AddressGuard, visitor_address
from .memory_panel import ChatMemory, memory_note

SENT = {"role": "user"}
LOADING_TICK_S = 1.0  # how often the "Loading …" line counts up


@dataclass(frozen=True)
class ChatSource:
    path: str
    shown_to_visitor: bool = False  # errors must not tell a visitor about the server's folders
    name: str = ""
    load_in: str = "auto"  # the owner's choice; visitors always get the server's "auto"

    def load(self):
        try:
            return generate.load_chat_model(self.path, load_in=self.load_in)
        except UserError as error:
            if not self.shown_to_visitor:
                raise
            print(f"talklike: a visitor's chat model could not be loaded: {error}", flush=True)
            raise gr.Error(f"{self.name or 'The model'} cannot be loaded right now; try again later.") from None


@dataclass(frozen=True)
class ReplyMemory:
    memory: ChatMemory | None = None
    shown: bool = False  # the list of memories used goes under the reply


def guarded(guard: AddressGuard, request: gr.Request, conversation):
    address = visitor_address(request)
    guard.enter(address)
    try:
        yield from conversation()
    finally:  # also when Stop cancels the generator
        guard.leave(address)


def converse(
    source: ChatSource,
    text: str,
    tuned_history: list,
    base_history: list,
    compare: bool,
    settings,
    remembering: ReplyMemory = ReplyMemory(),
):
    asked = {**SENT, "content": text}
    tuned_after, base_after = tuned_history + [asked], base_history + [asked]
    waiting = ("", tuned_after, base_after if compare else base_history)
    for step in fetch_steps(source.path):  # offline-small's first use: download and convert, shown as it goes
        yield *waiting, step
    model = yield from load_showing_progress(source, waiting)
    yield *waiting, "…"
    tuned_done = tuned_after
    report = ""
    prompts = []  # what the model was given: the memories used, shown under the reply
    for shown, report in stream_views(model, tuned_history, text, settings, True, remembering.memory, prompts.append):
        tuned_done = tuned_after + shown
        yield "", tuned_done, base_after if compare else base_history, report
    if remembering.shown and remembering.memory is not None and prompts:
        tuned_done = tuned_done + memory_note(prompts[0].remembered)
        yield "", tuned_done, base_after if compare else base_history, report
    if not compare:
        return
    tuned_report = report
    for shown, report in stream_views(model, base_history, text, settings, False, remembering.memory):
        yield "", tuned_done, base_after + shown, f"fine-tuned: {tuned_report} · base: {report}"


def load_showing_progress(source: ChatSource, waiting: tuple):
    """Yield `waiting` + a "Loading …" line (seconds so far) while the model loads; return the ChatModel.

    The first reply after choosing a model waits for its weights (seconds for a 135M model on a CPU,
    minutes for a large one from the Hub); said so, with a clock, it does not look frozen. The load
    runs in a worker thread; Stop leaves it to finish into the cache for the next message.
    """
    if generate.is_loaded(source.path, load_in=source.load_in):
        return source.load()
    loaded: dict = {}

    def load() -> None:
        try:
            loaded["model"] = source.load()
        except BaseException as error:  # raised again in the handler, where the UI shows it
            loaded["error"] = error

    worker = threading.Thread(target=load, name="talklike-load", daemon=True)
    # The name, not the path: a friend's page must not show the server's folders.
    name = source.name or Path(str(source.path)).name or str(source.path)
    started = time.perf_counter()
    worker.start()
    while worker.is_alive():
        yield (
            *waiting,
            f"Loading {name}… {time.perf_counter() - started:.0f} s (the first reply after choosing a model)",
        )
        worker.join(LOADING_TICK_S)
    if "error" in loaded:
        raise loaded["error"]
    return loaded["model"]


def stream_views(model, history: list, text: str, settings, use_adapter: bool, memory=None, on_prompt=None):
    """Yield (assistant bubbles, speed text) as the reply grows."""
    started = time.perf_counter()
    first_token_at = None
    reply = ""
    for reply in generate.stream_reply(
        model, history, text, settings, use_adapter=use_adapter, memory=memory, on_prompt=on_prompt
    ):
        first_token_at = first_token_at or time.perf_counter()
        yield bubbles(model, reply), ""
    elapsed = time.perf_counter() - started
    tokens = len(model.tokenizer(reply, add_special_tokens=False)["input_ids"]) if reply else 0
    ttft = (first_token_at - started) if first_token_at else elapsed
    if not reply:  # say so rather than leave an empty chat (a tiny or undertrained model ends its turn at once)
        yield [], "No reply: the model ended its turn at once. Try Balanced or Creative, or train longer."
        return
    yield (
        bubbles(model, reply),
        f"{tokens} tokens in {elapsed:.1f} s ({tokens / max(elapsed, 1e-6):.0f} tokens/s, first after {ttft * 1000:.0f} ms)",
    )


def bubbles(model, reply: str) -> list[dict]:
    """A reply whose turn separator is a newline or '|' becomes several bubbles, as the person texts."""
    pieces = generate.split_bubbles(reply, model.separator) or ([reply] if reply else [])
    return [{"role": "assistant", "content": piece} for piece in pieces]
