"""What one chat visitor can make the server do, decided by the server.

Everything a visitor sends is bounded here before it reaches the model: the message, the history
the browser sends back (its length, its roles), the reply length, and how many replies one
visitor has in progress. The session hash Gradio keys sessions on is chosen by the client, so the
per-visitor count is keyed on the client's network address instead (see visitor_address); the
hard guarantees (replies generated at once, requests waiting) are global and set in app.py.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass

import gradio as gr


@dataclass(frozen=True)
class ChatLimits:
    """The bounds for visitors (the chat-only page, and everyone but the owner in owner mode)."""

    max_new_tokens: int = 256  # longest reply a visitor can ask for
    concurrency: int = 2  # replies generated at the same time, for everyone together
    per_address: int = 1  # replies in progress per network address
    queue_size: int = 32  # requests waiting for a free slot, for everyone together; more are refused
    message_chars: int = 2_000  # one message a visitor sends
    history_messages: int = 40  # earlier messages of the conversation kept (the browser sends them back)

    @classmethod
    def for_owner(cls) -> ChatLimits:
        """The owner's own chat (a local studio, or the owner in owner mode): long replies, and a
        message as long as a training message may be (training.conversation.MAX_MESSAGE_CHARS)."""
        from training.conversation import MAX_MESSAGE_CHARS

        return cls(max_new_tokens=1024, message_chars=MAX_MESSAGE_CHARS, history_messages=200)

    def check(self) -> ChatLimits:
        for name in ("max_new_tokens", "concurrency", "per_address", "queue_size", "message_chars", "history_messages"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')}: {getattr(self, name)}; expected a whole number >= 1")
        return self


def visitor_address(request: gr.Request | None) -> str:
    """The network address a request came from, as the server saw it: not something the page sends."""
    if request is None:
        return "unknown"
    client = getattr(request, "client", None)
    return network_address(request.headers, getattr(client, "host", None))


def network_address(headers, peer: str | None) -> str:
    """On a Hugging Face Space every request arrives through the Space's proxy, which appends the
    address it saw to X-Forwarded-For: the last entry is the visitor's (entries before it are
    whatever the client wrote). Elsewhere the TCP peer address: behind another proxy (or a
    --share tunnel) every visitor then shares the proxy's address, and per-address limits become
    global ones, never looser ones."""
    if os.environ.get("SYSTEM") == "spaces":
        forwarded = [part.strip() for part in (headers.get("x-forwarded-for") or "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return peer or "unknown"


class AddressGuard:
    """At most `per_address` replies in progress per network address; more are refused at once."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()

    def enter(self, address: str) -> None:
        with self._lock:
            if self._busy[address] >= self.per_address:
                raise gr.Error("One message at a time: wait for the reply or press Stop.")
            self._busy[address] += 1

    def leave(self, address: str) -> None:
        with self._lock:
            self._busy[address] -= 1
            if self._busy[address] <= 0:
                del self._busy[address]


def check_message(text: str, limits: ChatLimits) -> None:
    if len(text) > limits.message_chars:
        raise gr.Error(f"Message: {len(text):,} characters; at most {limits.message_chars:,} here.")


def clean_history(history, limits: ChatLimits) -> list[dict]:
    """The conversation as the browser sent it back, reduced to what a chat can contain.

    Only user and assistant turns with text: a system message would replace the persona's system
    prompt (training.chat.generate.build_prompt honours one), and no widget here makes one, so a
    system message can only be a visitor rewriting who the bot is. The last `history_messages`
    turns, each cut to four times `message_chars` characters (the bot's own replies may be longer
    than what anyone types).
    """
    kept = []
    for message in history if isinstance(history, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        content = _text(message.get("content"))
        if content is not None:
            kept.append({"role": message["role"], "content": content[: 4 * limits.message_chars]})
    return kept[-limits.history_messages :]


def _text(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio 6 parts: [{"type": "text", "text": ...}]
        parts = [part.get("text") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return "".join(parts) if parts else None
    return None
