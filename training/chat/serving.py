"""What a shared bot serves with, decided by the server: limits per visitor and decoding defaults.

One `ChatLimits` bounds every way a visitor reaches a model: the chat-only page, the visitors of
owner mode, the OpenAI-compatible endpoint and the bot's own Space. Its fields are described once
here and become app.py's flags (`--max-new-tokens`), environment variables
(`TALKLIKE_MAX_NEW_TOKENS`, which a Space sets as variables) and the checks every front end runs.
The Gradio-specific guards built on it live in components/limits.py. No torch here: the CLI builds
its flags from this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from training.errors import UserError

ENV_PREFIX = "TALKLIKE_"
DECODING_ENV = "TALKLIKE_DECODING"


def _limit(default: int, help: str, low: int = 1):
    return field(default=default, metadata={"help": help, "min": low})


@dataclass(frozen=True)
class ChatLimits:
    """Bounds on what one visitor's request may cost; the server applies them whatever the client sends."""

    max_new_tokens: int = _limit(256, "longest reply a visitor can ask for, in tokens")
    concurrency: int = _limit(2, "replies generated at the same time, everyone together")
    per_address: int = _limit(1, "replies in progress per network address; more are refused at once")
    queue_size: int = _limit(32, "requests waiting for a free slot, everyone together; more are refused", low=0)
    message_chars: int = _limit(2_000, "longest message a visitor may send, in characters")
    history_messages: int = _limit(
        40, "earlier messages of the conversation read as context (older ones are dropped)", low=0
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < item.metadata["min"]:
                raise UserError(f"{flag_name(item.name)}: {value!r}; expected a whole number >= {item.metadata['min']}")

    @classmethod
    def for_owner(cls) -> ChatLimits:
        """The owner's own chat (a local studio, or the owner in owner mode): long replies, and a
        message as long as a training message may be (training.conversation.MAX_MESSAGE_CHARS)."""
        from training.conversation import MAX_MESSAGE_CHARS

        return cls(max_new_tokens=1024, message_chars=MAX_MESSAGE_CHARS, history_messages=200)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChatLimits:
        """Limits from TALKLIKE_MAX_NEW_TOKENS and friends; unset ones keep their defaults."""
        environ = os.environ if environ is None else environ
        given = {}
        for item in fields(cls):
            name = env_name(item.name)
            if environ.get(name, "").strip():
                try:
                    given[item.name] = int(environ[name])
                except ValueError:
                    raise UserError(f"{name}: {environ[name]!r}; expected a whole number") from None
        return cls(**given)

    def to_env(self) -> dict[str, str]:
        return {env_name(item.name): str(getattr(self, item.name)) for item in fields(self)}

    @classmethod
    def add_arguments(cls, parser) -> None:
        """`--max-new-tokens N` etc., defaulting to the environment, then to the field defaults."""
        defaults = cls.from_env()
        for item in fields(cls):
            parser.add_argument(
                flag_name(item.name),
                type=int,
                default=getattr(defaults, item.name),
                help=f"visitors: {item.metadata['help']} (or {env_name(item.name)})",
            )

    @classmethod
    def from_args(cls, args) -> ChatLimits:
        return cls(**{item.name: getattr(args, item.name) for item in fields(cls)})

    def cap(self, settings):
        """DecodingSettings with max_new_tokens no larger than the cap (a missing value means the cap)."""
        wanted = settings.max_new_tokens or self.max_new_tokens
        return dataclasses.replace(settings, max_new_tokens=min(int(wanted), self.max_new_tokens))

    def check_message(self, message: str) -> None:
        if len(message) > self.message_chars:
            raise UserError(f"message: {len(message):,} characters; at most {self.message_chars:,} here")

    def trim_history(self, history: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        """The newest `history_messages` turns, each cut to four times `message_chars` characters
        (the bot's own replies may be longer than what anyone types)."""
        kept = list(history)[-self.history_messages :] if self.history_messages else []
        return [{**turn, "content": turn["content"][: 4 * self.message_chars]} for turn in kept]


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def network_address(headers, peer: str | None) -> str:
    """The address a request came from, as the server saw it: not something the client chooses.

    On a Hugging Face Space every request arrives through the Space's proxy, which appends the
    address it saw to X-Forwarded-For: the last entry is the visitor's (entries before it are
    whatever the client wrote). Elsewhere the TCP peer address: behind another proxy (or a
    --share tunnel) every visitor then shares the proxy's address, and per-address limits become
    global ones, never looser ones."""
    if os.environ.get("SYSTEM") == "spaces":
        forwarded = [part.strip() for part in (headers.get("x-forwarded-for") or "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return peer or "unknown"


class AddressSlots:
    """At most `per_address` replies in progress per network address, over every front end that
    shares this object (the chat page and the OpenAI endpoint)."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()

    def try_enter(self, address: str) -> bool:
        with self._lock:
            if self._busy[address] >= self.per_address:
                return False
            self._busy[address] += 1
            return True

    def leave(self, address: str) -> None:
        with self._lock:
            self._busy[address] -= 1
            if self._busy[address] <= 0:
                del self._busy[address]


class Admission:
    """At most `concurrency + queue_size` requests in flight; the rest are turned away at once."""

    def __init__(self, limits: ChatLimits) -> None:
        self._slots = threading.BoundedSemaphore(limits.concurrency + limits.queue_size)

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()


class FailedAttempts:
    """Refuses a client after `limit` failed logins within `window_s` seconds (guessing keys is slow)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, clock=time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client)) >= self.limit

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            if len(self._failures) > 10_000:  # bounded memory under a flood of addresses
                self._failures = {key: value for key, value in self._failures.items() if value}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] < self._clock() - self.window_s:
            failures.popleft()
        return failures


def parse_decoding(text: str | None):
    """Decoding defaults from a preset name (Greedy, Balanced, Creative) or a JSON object of
    DecodingSettings fields, as given to `--decoding` or the TALKLIKE_DECODING variable."""
    from training.chat.decoding import PRESETS, DecodingSettings

    text = (text or "").strip()
    if not text:
        return dataclasses.replace(PRESETS["Greedy"])
    if text in PRESETS:
        return dataclasses.replace(PRESETS[text])
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise UserError(
            f"decoding: {text[:60]!r}; expected {', '.join(PRESETS)} or a JSON object of settings"
        ) from None
    known = {item.name for item in fields(DecodingSettings)}
    if not isinstance(values, dict) or set(values) - known:
        unknown = sorted(set(values) - known) if isinstance(values, dict) else type(values).__name__
        raise UserError(f"decoding: unknown {unknown}; expected fields among {', '.join(sorted(known))}")
    return DecodingSettings(**values).validate()


def decoding_text(settings) -> str:
    """The JSON that `parse_decoding` reads back into the same settings."""
    return json.dumps(dataclasses.asdict(settings), separators=(",", ":"))
