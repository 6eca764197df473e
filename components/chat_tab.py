"""Chat tab: talk to the persona, side by side with the base model, the way the person texts.

Also the whole page of `python app.py --chat-only MODEL`, the link friends get: there the model
is fixed on the server and no training, data or export event exists at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import gradio as gr

from training.chat import generate, precision
from training.chat.decoding import PRESETS, DecodingSettings, preset
from training.chat.serving import AddressSlots
from training.errors import UserError
from training.models import OFFLINE_SMALL, OFFLINE_TINY
from training.train.runs import (
    list_runs,
    open_run,
    published_runs,
    runs_root,
    set_published,
)

from .chat_reply import ChatSource, ReplyMemory, converse, guarded
from .common import Owner, as_owner, knows_the_owner, owner_only, shows_user_errors
from .limits import (
    AddressGuard,
    ChatLimits,
    check_message,
    clean_history,
)
from .memory_panel import (
    MemoryPanel,
    MemoryPolicy,
    build_memory_panel,
    owner_memory,
    visitor_memory,
)

SOURCE_LABEL = "Chat with: a finished run, a model folder, a Hub id, or offline-small"


@dataclass
class ChatTab:
    source: gr.components.Component | None  # None on the chat-only page: the model is fixed
    refresh: Callable  # what to list for whoever opens the page: wire it to page loads / tab opens
    refreshed: list  # the components `refresh` updates


def build_chat_tab(  # long: the tab's layout, then events that close over it
    fixed_source: str | None = None,
    limits: ChatLimits | None = None,
    owner: Owner | str | None = None,
    decoding_defaults: DecodingSettings | None = None,
    slots: AddressSlots | None = None,
    memory_policy: MemoryPolicy | None = None,
) -> ChatTab:
    """Three ways to serve the chat:
    - a local studio (no fixed source, no owner): the picker takes any run, folder or Hub id;
    - the chat-only page (`fixed_source`): one model, everyone under `limits`;
    - owner mode (`owner`): the owner as in a studio; everyone else picks among the runs the
      owner published, by name (never a path, a Hub id or the server's token), under `limits`.

    `decoding_defaults`: what the Decoding panel starts with (the bot's --decoding). `slots`: the
    per-address count to share with the OpenAI endpoint, so one address's bound covers both.
    `memory_policy`: whether visitors' chats use memory and see the memories used (memory_panel.py).
    """
    owner = as_owner(owner)
    visitors = _Visitors(fixed_source, limits or ChatLimits(), owner, memory_policy or MemoryPolicy())
    guard = AddressGuard(slots or AddressSlots(visitors.limits.per_address))
    cap = visitors.bounds(is_owner=not fixed_source).max_new_tokens  # the slider's end
    source = publish = load_in = None
    with gr.Row():
        if fixed_source is None:
            # In owner mode the page itself (Gradio's /config) must not list run paths: the list
            # arrives with the page load, for the owner or for a visitor.
            source = gr.Dropdown(
                [] if owner else _chat_sources(),
                value=None if owner else OFFLINE_SMALL,
                allow_custom_value=True,
                scale=4,
                label=SOURCE_LABEL,
            )
            # A visitor's choice is ignored (see _Visitors.source): the server picks how its models load.
            load_in = gr.Radio(
                list(precision.LOAD_MODES),
                value="auto",
                scale=2,
                label="Load weights in",
                info="auto: 8 or 4 bits only on a GPU it would not fit otherwise",
            )
        compare = gr.Checkbox(label="Side by side with the base model", value=False, scale=1)
    if owner:
        # Choices arrive with the owner's page load; _publish checks every name against the runs on disk.
        publish = gr.Dropdown(
            [],
            multiselect=True,
            allow_custom_value=True,
            visible=False,
            label="Visitors can chat with these finished runs",
        )
        publish.input(owner_only(owner)(_publish), inputs=publish, outputs=None, api_name="publish_runs")
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
    gr.Examples(
        [[p.prompt] for p in generate.PROBE_PROMPTS],
        inputs=message,
        label="Out-of-format probes: what changed (voice) and what was kept (knowledge)",
    )
    decoding, knobs = _decoding_controls(cap, decoding_defaults or PRESETS["Greedy"])
    panel = build_memory_panel(source, owner) if source is not None else None
    if source is not None:  # the studio only: feedback writes to the owner's run (feedback_panel.py)
        from .feedback_panel import build_feedback_panel  # not shipped with the bot's chat-only Space

        feedback_panel = build_feedback_panel(
            source,
            tuned,
            base,
            lambda values: _settings(values, decoding, knobs, cap),
            [decoding, *knobs.values(), *panel.inputs],
            owner,
            memory_of=lambda values: owner_memory(values, panel, values[source]),  # only the owner judges
        )

    def on_preset(name: str):
        chosen = PRESETS[name]
        return [getattr(chosen, key) if key != "max_new_tokens" else min(chosen.max_new_tokens, cap) for key in knobs]

    decoding.change(on_preset, inputs=decoding, outputs=list(knobs.values()), api_name=False)
    compare.change(lambda on: gr.update(visible=on), inputs=compare, outputs=base, api_name=False)
    if fixed_source is None:  # the owner sees, before sending, how the chosen model will load
        describe = owner_only(owner, denied=str)(describe_load)  # a visitor must not probe the server's paths
        for changed in (source, load_in):
            changed.change(describe, inputs=[source, load_in], outputs=memory, api_name=False)
    inputs = {c for c in (source, load_in, message, tuned, base, compare, decoding, *knobs.values()) if c}
    inputs |= set(panel.inputs) if panel is not None else set()

    def respond(values: dict, request: gr.Request, is_owner: bool):
        text = (values[message] or "").strip()
        if not text:
            return
        bounds = visitors.bounds(is_owner)
        check_message(text, bounds)
        history, base_history = clean_history(values[tuned], bounds), clean_history(values[base], bounds)
        yield from reply_to(values, request, is_owner, text, history, base_history)

    def retry_last(values: dict, request: gr.Request, is_owner: bool):
        bounds = visitors.bounds(is_owner)
        history = clean_history(values[tuned], bounds)
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            return
        text = history[last_user]["content"]
        base_history = clean_history(values[base], bounds)
        base_history = base_history[: _last_user_index(base_history)] if values[compare] else []
        yield from reply_to(values, request, is_owner, text, history[:last_user], base_history)

    def reply_to(values: dict, request: gr.Request, is_owner: bool, text: str, history: list, base_history: list):
        """Both columns' replies to `text` after these histories, with the page's settings, source and memory."""
        bounds = visitors.bounds(is_owner)
        settings = _settings(values, decoding, knobs, bounds.max_new_tokens)
        chosen = visitors.source(values.get(source), is_owner, values.get(load_in))
        remembering = visitors.memory(values, panel, chosen, is_owner)

        def conversation():
            return converse(chosen, text, history, base_history, values[compare], settings, remembering)

        yield from guarded(guard, request, conversation)

    outputs = [message, tuned, base, speed]
    replying = dict(inputs=inputs, outputs=outputs, concurrency_limit=visitors.limits.concurrency)
    send_event = send.click(knows_the_owner(owner)(shows_user_errors(respond)), api_name="chat", **replying)
    submit_event = message.submit(knows_the_owner(owner)(shows_user_errors(respond)), api_name=False, **replying)
    retry_event = retry.click(knows_the_owner(owner)(shows_user_errors(retry_last)), api_name="retry", **replying)
    stop.click(None, cancels=[send_event, submit_event, retry_event], api_name=False)
    clear.click(lambda: ([], [], ""), outputs=[tuned, base, speed], api_name="clear")
    refreshed = [component for component in (source, publish) if component is not None]
    refresh = visitors.listing
    if owner and source is not None:
        refreshed += feedback_panel.owner_view

        def refresh(is_owner: bool):
            return (*visitors.listing(is_owner), *feedback_panel.shown(is_owner))

    return ChatTab(source=source, refresh=knows_the_owner(owner)(refresh), refreshed=refreshed)


class _Visitors:
    """What to list and load for whoever is asking (see build_chat_tab's three ways)."""

    def __init__(self, fixed_source: str | None, limits: ChatLimits, owner: Owner | None, policy: MemoryPolicy):
        self.fixed_source, self.limits, self.owner, self.policy = fixed_source, limits, owner, policy

    def memory(self, values: dict, panel: MemoryPanel | None, chosen: ChatSource, is_owner: bool) -> ReplyMemory:
        """The owner's Memory settings; for a visitor, the server's (memory_panel.MemoryPolicy)."""
        if is_owner and not self.fixed_source and panel is not None:
            return ReplyMemory(owner_memory(values, panel, chosen.path), shown=True)
        return ReplyMemory(visitor_memory(self.policy, chosen.path), shown=self.policy.shown_to_visitors)

    def bounds(self, is_owner: bool) -> ChatLimits:
        # Without an owner every request counts as the owner's (a local studio), except on the
        # chat-only page, where everyone is a visitor.
        return ChatLimits.for_owner() if is_owner and not self.fixed_source else self.limits

    def listing(self, is_owner: bool):
        if self.fixed_source:
            return ()
        if is_owner:
            sources = gr.update(choices=_chat_sources())
            if not self.owner:
                return sources
            finished = [r["name"] for r in list_runs() if r["has_final"]]
            return sources, gr.update(choices=finished, value=list(published_runs()), visible=True)
        return gr.update(choices=list(published_runs())), gr.update(visible=False)

    def source(self, chosen: str | None, is_owner: bool, load_in: str | None = None) -> ChatSource:
        if self.fixed_source:
            return ChatSource(self.fixed_source, shown_to_visitor=True)
        if is_owner:
            if not chosen:
                raise gr.Error("Pick what to chat with: a finished run, a model folder, a Hub id, or offline-small.")
            return ChatSource(chosen, load_in=load_in or "auto")
        published = published_runs()
        if chosen not in published:
            raise gr.Error(
                "Pick one of the runs listed under 'Chat with'."
                if published
                else "Nothing to chat with yet: the owner has not published a run."
            )
        return ChatSource(str(published[chosen]), shown_to_visitor=True, name=chosen)


def _publish(names: list[str] | None) -> None:
    finished = [r["name"] for r in list_runs() if r["has_final"]]
    chosen = set(names or [])
    if chosen - set(finished):
        raise gr.Error(f"Only finished runs can be published; not {', '.join(sorted(chosen - set(finished)))}.")
    for name in finished:
        set_published(open_run(runs_root() / name), name in chosen)


def _decoding_controls(cap: int, defaults: DecodingSettings) -> tuple[gr.Radio, dict]:
    with gr.Accordion("Decoding", open=False):
        decoding = gr.Radio(
            list(PRESETS), value=_preset_name(defaults), label="Style (Greedy = always the likeliest word)"
        )
        with gr.Row():
            knobs = {
                "temperature": gr.Slider(0.05, 2.0, value=defaults.temperature, step=0.05, label="Temperature"),
                "top_p": gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="Top-p"),
                "top_k": gr.Slider(0, 200, value=defaults.top_k, step=1, label="Top-k (0 = off)"),
                "repetition_penalty": gr.Slider(
                    1.0, 2.0, value=defaults.repetition_penalty, step=0.05, label="Repetition penalty"
                ),
                "no_repeat_ngram_size": gr.Slider(
                    0, 6, value=defaults.no_repeat_ngram_size, step=1, label="No repeated n-grams of size"
                ),
                "max_new_tokens": gr.Slider(
                    8, cap, value=min(defaults.max_new_tokens, cap), step=8, label="Max new tokens"
                ),
                "seed": gr.Number(value=defaults.seed, precision=0, label="Seed (blank = random)"),
            }
    return decoding, knobs


def _preset_name(settings: DecodingSettings) -> str:
    """The preset whose settings these are, else the closest style (knobs carry the rest)."""
    same = [name for name, style in PRESETS.items() if style == settings]
    return same[0] if same else ("Balanced" if settings.do_sample else "Greedy")


def _settings(values: dict, decoding, knobs: dict, cap: int) -> DecodingSettings:
    chosen = {key: values[component] for key, component in knobs.items()}
    chosen["max_new_tokens"] = min(int(chosen["max_new_tokens"] or cap), cap)  # friends cannot lift the cap
    chosen["seed"] = None if chosen["seed"] in (None, "") else int(chosen["seed"])
    known = {f.name for f in fields(DecodingSettings)}
    return preset(values[decoding], **{k: v for k, v in chosen.items() if k in known})


def describe_load(source, load_in: str) -> str:
    """How the source will load (precision and memory), or why it cannot load that way."""
    if not source:
        return ""
    try:
        return precision.describe(generate.load_plan(source, load_in))
    except UserError as error:
        return f"⚠️ {error}"


def _last_user_index(history: list) -> int:
    return max((i for i, m in enumerate(history) if m["role"] == "user"), default=len(history))


def _chat_sources() -> list[str]:
    finished = [(f"{r['name']} ({r['method']}, {r['state']})", r["path"]) for r in list_runs() if r["has_final"]]
    offline = [
        (f"{OFFLINE_SMALL} (SmolLM2-135M-Instruct, not fine-tuned)", OFFLINE_SMALL),
        (OFFLINE_TINY, OFFLINE_TINY),
    ]
    return finished + offline
