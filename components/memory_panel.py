"""The Chat tab's Memory: the owner's switch, k, exclusions and facts, and the memories used under a reply.

The memories quote private chats, so who gets what is the server's decision (MemoryPolicy, set by
app.py's --memory and --show-memory): the owner of a studio chooses in the Memory accordion; a
visitor (chat-only page, published runs) chats with memory only when the owner enabled it, with the
server's defaults, and sees the list of memories only when the owner allowed that too.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from training.chat.facts import facts_path, write_facts
from training.chat.memory import MAX_K
from training.chat.memory_prompt import (
    DEFAULT_K,
    ChatMemory,
    MemorySettings,
    Remembered,
    describe,
    memory_data_file,
    open_chat_memory,
)
from training.errors import UserError

from .common import Owner, owner_only

NOTE_TITLE = "Memories used"


@dataclass(frozen=True)
class MemoryPolicy:
    """What visitors get: memory in their chats (`for_visitors`), and the list of memories used (`shown`)."""

    for_visitors: bool = False
    shown_to_visitors: bool = False


@dataclass
class MemoryPanel:
    enabled: gr.Checkbox
    k: gr.Slider
    exclude_threads: gr.Dropdown
    exclude_people: gr.Dropdown
    facts: gr.Textbox

    @property
    def inputs(self) -> list:
        return [self.enabled, self.k, self.exclude_threads, self.exclude_people, self.facts]


def build_memory_panel(source: gr.components.Component, owner: Owner | None) -> MemoryPanel:
    """The Memory accordion; only the owner's requests read or change what it shows (facts, threads, people)."""
    with gr.Accordion("Memory", open=False):
        gr.Markdown(
            "Give the model your own past replies that are most like each message (from the training "
            "conversations only) and the facts below, in its system prompt. They stay in your data folder."
        )
        with gr.Row():
            enabled = gr.Checkbox(label="Memory on", value=False, scale=1)
            k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Memories per message (k)", scale=3)
        with gr.Row():
            exclude_threads = gr.Dropdown(
                [], multiselect=True, allow_custom_value=True, label="Never recall from these threads"
            )
            exclude_people = gr.Dropdown(
                [], multiselect=True, allow_custom_value=True, label="Never recall from threads with these people"
            )
        facts = gr.Textbox(
            lines=4,
            label="Facts about you (one per line; always given when memory is on)",
            placeholder="barista in Portland\nrides a bike everywhere",
        )
        with gr.Row():
            save = gr.Button("Save facts", scale=1)
            status = gr.Markdown()
    panel = MemoryPanel(enabled, k, exclude_threads, exclude_people, facts)
    unchanged = owner_only(owner, denied=lambda: (gr.update(),) * 4)  # a visitor's page shows nothing of it
    source.change(
        unchanged(memory_choices),
        inputs=source,
        outputs=[exclude_threads, exclude_people, facts, status],
        api_name=False,
    )
    save.click(owner_only(owner)(save_facts), inputs=[source, facts], outputs=status, api_name="save_facts")
    return panel


def memory_choices(source: str | None):
    """The source's threads, people and saved facts for the panel, or why it has no memory."""
    try:
        memory = open_chat_memory(source) if source else None
    except UserError as error:
        return gr.update(choices=[]), gr.update(choices=[]), gr.update(), f"No memory for this model: {error}"
    if memory is None:
        return gr.update(choices=[]), gr.update(choices=[]), gr.update(), ""
    index = memory.index
    return (
        gr.update(choices=index.threads()),
        gr.update(choices=index.people()),
        "\n".join(memory.facts),
        f"{len(index):,} past exchanges to recall from ({memory_data_file(source).name}).",
    )


def save_facts(source: str | None, facts: str | None) -> str:
    if not source:
        raise gr.Error("Pick what to chat with first: facts are saved beside its training data.")
    try:
        path = write_facts(facts_path(memory_data_file(source)), (facts or "").splitlines())
    except UserError as error:
        raise gr.Error(str(error), print_exception=False) from None
    return f"Saved to `{path.name}`."


def owner_memory(values: dict, panel: MemoryPanel, source: str) -> ChatMemory | None:
    """The memory the owner asked for in the panel, or None with Memory off."""
    if not values[panel.enabled]:
        return None
    settings = MemorySettings(
        k=int(values[panel.k] or DEFAULT_K),
        exclude_threads=tuple(values[panel.exclude_threads] or ()),
        exclude_people=tuple(values[panel.exclude_people] or ()),
        facts=tuple((values[panel.facts] or "").splitlines()),
    )
    return open_chat_memory(source, settings)


def visitor_memory(policy: MemoryPolicy, source: str) -> ChatMemory | None:
    """The server's memory for a visitor's chat: only if the owner enabled it, else None.

    A run without a memory index chats without one; the reason goes to the server's log, never to
    the visitor (it names the server's files).
    """
    if not policy.for_visitors:
        return None
    try:
        return open_chat_memory(source)
    except UserError as error:
        print(f"talklike: a visitor's chat runs without memory: {error}", flush=True)
        return None


def memory_note(remembered: Remembered | None) -> list[dict]:
    """The collapsed "Memories used" message shown under a reply (nothing without memory)."""
    if remembered is None:
        return []
    listed = "\n".join(f"- {line}" for line in describe(remembered).splitlines())
    return [{"role": "assistant", "content": listed, "metadata": {"title": NOTE_TITLE, "status": "done"}}]
