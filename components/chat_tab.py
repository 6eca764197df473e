"""Chat tab: talk to the persona, side by side with the base model, the way the person texts.

Also the whole page of `python app.py --chat-only MODEL`, the link friends get: there the model
is fixed on the server and no training, data or export event exists at all.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields

import gradio as gr

from training.chat import generate, precision
from training.errors import UserError
from training.models import OFFLINE_TINY
from training.train.runs import list_runs

from .common import shows_user_errors

SENT = {"role": "user"}


@dataclass
class ChatTab:
    source: gr.components.Component


class SessionGuard:
    """One reply at a time per browser session, so one friend cannot queue up the server."""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def enter(self, session: str) -> None:
        with self._lock:
            if session in self._busy:
                raise gr.Error("One message at a time: wait for the reply or press Stop.")
            self._busy.add(session)

    def leave(self, session: str) -> None:
        with self._lock:
            self._busy.discard(session)


def build_chat_tab(fixed_source: str | None = None, max_new_tokens_cap: int | None = None,
                   concurrency_limit: int | None = None) -> ChatTab:
    """`fixed_source`: the model friends chat with (chat-only mode); None = a picker for the owner."""
    guard = SessionGuard()
    cap = max_new_tokens_cap or 1024
    with gr.Row():
        if fixed_source is None:
            source = gr.Dropdown(_chat_sources(), value=None, allow_custom_value=True, scale=4,
                                 label="Chat with: a finished run, a model folder, a Hub id, or offline-tiny")  # fmt: skip
            load_in = gr.Radio(list(precision.LOAD_MODES), value="auto", scale=2, label="Load weights in",
                               info="auto: 8 or 4 bits only on a GPU it would not fit otherwise")  # fmt: skip
        else:
            source, load_in = gr.State(fixed_source), gr.State("auto")
        compare = gr.Checkbox(label="Side by side with the base model", value=False, scale=1)
    memory = gr.Markdown()
    with gr.Row():
        tuned = gr.Chatbot(label="Fine-tuned: texts like you", height=420, buttons=["copy"])
        base = gr.Chatbot(label="Base model (same weights, adapter off)", height=420, visible=False)
    speed = gr.Markdown()
    with gr.Row():
        message = gr.Textbox(label="Message", placeholder="Text something…", show_label=False, scale=6, lines=1)
        send = gr.Button("Send", variant="primary", scale=1)
        stop = gr.Button("Stop", scale=1)
        retry = gr.Button("Retry", scale=1)
        clear = gr.Button("Clear", scale=1)
    gr.Examples([[p.prompt] for p in generate.PROBE_PROMPTS], inputs=message,
                label="Out-of-format probes: what changed (voice) and what was kept (knowledge)")  # fmt: skip
    with gr.Accordion("Decoding", open=False):
        decoding = gr.Radio(list(generate.PRESETS), value="Greedy", label="Style (Greedy = always the likeliest word)")
        defaults = generate.PRESETS["Greedy"]
        with gr.Row():
            knobs = {
                "temperature": gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature"),
                "top_p": gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p"),
                "top_k": gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)"),
                "repetition_penalty": gr.Slider(1.0, 2.0, value=1.0, step=0.05, label="Repetition penalty"),
                "no_repeat_ngram_size": gr.Slider(0, 6, value=0, step=1, label="No repeated n-grams of size"),
                "max_new_tokens": gr.Slider(8, cap, value=min(defaults.max_new_tokens, cap), step=8, label="Max new tokens"),
                "seed": gr.Number(value=0, precision=0, label="Seed (blank = random)"),
            }

    def on_preset(name: str):
        chosen = generate.PRESETS[name]
        return [getattr(chosen, key) if key != "max_new_tokens" else min(chosen.max_new_tokens, cap) for key in knobs]

    decoding.change(on_preset, inputs=decoding, outputs=list(knobs.values()), api_name=False)
    compare.change(lambda on: gr.update(visible=on), inputs=compare, outputs=base, api_name=False)
    if fixed_source is None:  # the owner sees, before sending, how the chosen model will load
        for changed in (source, load_in):
            changed.change(describe_load, inputs=[source, load_in], outputs=memory, api_name=False)
    inputs = {source, load_in, message, tuned, base, compare, decoding, *knobs.values()}

    def respond(values: dict, request: gr.Request):
        text = (values[message] or "").strip()
        if not text:
            return
        settings = _settings(values, decoding, knobs, cap)
        chosen = (values[source], values[load_in])
        yield from _guarded(guard, request, lambda: _converse(chosen, text, values[tuned], values[base],
                                                              values[compare], settings))  # fmt: skip

    def retry_last(values: dict, request: gr.Request):
        history = values[tuned]
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            return
        text = _text(history[last_user]["content"])
        base_history = values[base][: _last_user_index(values[base])] if values[compare] else []
        settings = _settings(values, decoding, knobs, cap)
        chosen = (values[source], values[load_in])
        yield from _guarded(guard, request, lambda: _converse(chosen, text, history[:last_user], base_history,
                                                              values[compare], settings))  # fmt: skip

    outputs = [message, tuned, base, speed]
    send_event = send.click(shows_user_errors(respond), inputs=inputs, outputs=outputs, api_name="chat",
                            concurrency_limit=concurrency_limit)  # fmt: skip
    submit_event = message.submit(shows_user_errors(respond), inputs=inputs, outputs=outputs, api_name=False,
                                  concurrency_limit=concurrency_limit)  # fmt: skip
    retry_event = retry.click(shows_user_errors(retry_last), inputs=inputs, outputs=outputs, api_name="retry",
                              concurrency_limit=concurrency_limit)  # fmt: skip
    stop.click(None, cancels=[send_event, submit_event, retry_event], api_name=False)
    clear.click(lambda: ([], [], ""), outputs=[tuned, base, speed], api_name="clear")
    return ChatTab(source=source)


def _guarded(guard: SessionGuard, request: gr.Request, conversation):
    session = getattr(request, "session_hash", None) or "anonymous"
    guard.enter(session)
    try:
        yield from conversation()
    finally:  # also when Stop cancels the generator
        guard.leave(session)


def _settings(values: dict, decoding, knobs: dict, cap: int) -> generate.DecodingSettings:
    chosen = {key: values[component] for key, component in knobs.items()}
    chosen["max_new_tokens"] = min(int(chosen["max_new_tokens"] or cap), cap)  # friends cannot lift the cap
    chosen["seed"] = None if chosen["seed"] in (None, "") else int(chosen["seed"])
    known = {f.name for f in fields(generate.DecodingSettings)}
    return generate.preset(values[decoding], **{k: v for k, v in chosen.items() if k in known})


def describe_load(source, load_in: str) -> str:
    """How the source will load (precision and memory), or why it cannot load that way."""
    if not source:
        return ""
    try:
        return precision.describe(generate.load_plan(source, load_in))
    except UserError as error:
        return f"⚠️ {error}"


def _converse(chosen: tuple, text: str, tuned_history: list, base_history: list, compare: bool, settings):
    source, load_in = chosen
    if not source:
        raise gr.Error("Pick what to chat with: a finished run, a model folder, a Hub id, or offline-tiny.")
    model = generate.load_chat_model(source, load_in=load_in)
    asked = {**SENT, "content": text}
    tuned_after, base_after = tuned_history + [asked], base_history + [asked]
    yield "", tuned_after, base_after if compare else base_history, "…"
    tuned_done = tuned_after
    report = ""
    for shown, report in _stream(model, tuned_history, text, settings, use_adapter=True):
        tuned_done = tuned_after + shown
        yield "", tuned_done, base_after if compare else base_history, report
    if not compare:
        return
    tuned_report = report
    for shown, report in _stream(model, base_history, text, settings, use_adapter=False):
        yield "", tuned_done, base_after + shown, f"fine-tuned: {tuned_report} · base: {report}"


def _stream(model, history: list, text: str, settings, use_adapter: bool):
    """Yield (assistant bubbles, speed text) as the reply grows."""
    started = time.perf_counter()
    first_token_at = None
    reply = ""
    for reply in generate.stream_reply(model, history, text, settings, use_adapter=use_adapter):
        first_token_at = first_token_at or time.perf_counter()
        yield _bubbles(model, reply), ""
    elapsed = time.perf_counter() - started
    tokens = len(model.tokenizer(reply, add_special_tokens=False)["input_ids"]) if reply else 0
    ttft = (first_token_at - started) if first_token_at else elapsed
    if not reply:  # say so rather than leave an empty chat (a tiny or undertrained model ends its turn at once)
        yield [], "No reply: the model ended its turn at once. Try Balanced or Creative, or train longer."
        return
    yield _bubbles(model, reply), f"{tokens} tokens in {elapsed:.1f} s ({tokens / max(elapsed, 1e-6):.0f} tokens/s, first after {ttft * 1000:.0f} ms)"


def _bubbles(model, reply: str) -> list[dict]:
    """A reply whose turn separator is a newline or '|' becomes several bubbles, as the person texts."""
    pieces = generate.split_bubbles(reply, model.separator) or ([reply] if reply else [])
    return [{"role": "assistant", "content": piece} for piece in pieces]


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio 6 parts: [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _last_user_index(history: list) -> int:
    return max((i for i, m in enumerate(history) if m["role"] == "user"), default=len(history))


def _chat_sources() -> list[str]:
    finished = [(f"{r['name']} ({r['method']}, {r['state']})", r["path"]) for r in list_runs() if r["has_final"]]
    return finished + [(OFFLINE_TINY, OFFLINE_TINY)]


def refresh_sources():
    return gr.update(choices=_chat_sources())
