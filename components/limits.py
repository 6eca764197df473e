"""What one chat visitor can make the server do, decided by the server: the Gradio side.

The bounds themselves are training.chat.serving.ChatLimits (shared with the OpenAI endpoint and
the bot's Space). Here they meet Gradio: the message, the history the browser sends back (its
length, its roles), and how many replies one visitor has in progress. The session hash Gradio
keys sessions on is chosen by the client, so the per-visitor count is keyed on the client's
network address instead (see visitor_address); the hard guarantees (replies generated at once,
requests waiting) are global and set in app.py.
"""

from __future__ import annotations

import gradio as gr

from training.chat.serving import AddressSlots, ChatLimits, network_address
from training.errors import UserError

__all__ = ["AddressGuard", "ChatLimits", "check_message", "clean_history", "network_address", "visitor_address"]


def visitor_address(request: gr.Request | None) -> str:
    """The network address a request came from, as the server saw it: not something the page sends."""
    if request is None:
        return "unknown"
    client = getattr(request, "client", None)
    return network_address(request.headers, getattr(client, "host", None))


class AddressGuard:
    """The chat page's side of AddressSlots: a visitor over the per-address bound gets a gr.Error."""

    def __init__(self, slots: AddressSlots) -> None:
        self.slots = slots

    def enter(self, address: str) -> None:
        if not self.slots.try_enter(address):
            raise gr.Error("One message at a time: wait for the reply or press Stop.")

    def leave(self, address: str) -> None:
        self.slots.leave(address)


def check_message(text: str, limits: ChatLimits) -> None:
    try:
        limits.check_message(text)
    except UserError as error:
        shown = str(error)
        raise gr.Error(f"{shown[:1].upper()}{shown[1:]}.") from None


def clean_history(history, limits: ChatLimits) -> list[dict]:
    """The conversation as the browser sent it back, reduced to what a chat can contain.

    Only user and assistant turns with text: a system message would replace the persona's system
    prompt (training.chat.generate.build_prompt honours one), and no widget here makes one, so a
    system message can only be a visitor rewriting who the bot is. Then ChatLimits.trim_history.
    """
    kept = []
    for message in history if isinstance(history, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        if isinstance(message.get("metadata"), dict) and message["metadata"].get("title"):
            continue  # a collapsed note under a reply (the memories used), not something anyone said
        content = _text(message.get("content"))
        if content is not None:
            kept.append({"role": message["role"], "content": content})
    return limits.trim_history(kept)


def _text(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio 6 parts: [{"type": "text", "text": ...}]
        parts = [part.get("text") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return "".join(parts) if parts else None
    return None
