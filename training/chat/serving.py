"""What a shared bot serves with, decided by the server: limits per visitor and decoding defaults.

One `ChatLimits` serves the chat-only page and the OpenAI-compatible endpoint alike; its fields are
described once here and become app.py's flags (`--max-new-tokens`), environment variables
(`TALKLIKE_MAX_NEW_TOKENS`, which a Space sets as variables) and the checks both front ends run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from training.chat.generate import PRESETS, DecodingSettings
from training.errors import UserError

ENV_PREFIX = "TALKLIKE_"
DECODING_ENV = "TALKLIKE_DECODING"


def _limit(default: int, help: str, low: int = 1):
    return field(default=default, metadata={"help": help, "min": low})


@dataclass(frozen=True)
class ChatLimits:
    """Bounds on what one request may cost; the server applies them whatever the client sends."""

    max_new_tokens: int = _limit(256, "longest reply, in tokens")
    max_message_chars: int = _limit(4000, "longest message a visitor may send, in characters")
    max_history_messages: int = _limit(40, "earlier messages kept as context (older ones are dropped)", low=0)
    concurrency: int = _limit(2, "replies generated at the same time")
    queue_size: int = _limit(16, "requests allowed to wait beyond those being answered", low=0)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < item.metadata["min"]:
                raise UserError(f"{item.name}: {value!r}; expected a whole number >= {item.metadata['min']}")

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
            parser.add_argument(f"--{item.name.replace('_', '-')}", type=int, default=getattr(defaults, item.name),
                                help=f"shared chat: {item.metadata['help']} (or {env_name(item.name)})")  # fmt: skip

    @classmethod
    def from_args(cls, args) -> ChatLimits:
        return cls(**{item.name: getattr(args, item.name) for item in fields(cls)})

    def cap(self, settings: DecodingSettings) -> DecodingSettings:
        """`settings` with max_new_tokens no larger than the cap (a missing value means the cap)."""
        wanted = settings.max_new_tokens or self.max_new_tokens
        return dataclasses.replace(settings, max_new_tokens=min(int(wanted), self.max_new_tokens))

    def bound(self, history: Sequence[dict], message: str) -> list[dict]:
        """The history to answer `message` with: message length checked, oldest messages dropped."""
        if len(message) > self.max_message_chars:
            raise UserError(f"message: {len(message)} characters; at most {self.max_message_chars} here")
        for item in history:
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, str) and len(content) > self.max_message_chars:
                raise UserError(f"history: a message of {len(content)} characters; at most {self.max_message_chars} here")
        return list(history)[-self.max_history_messages :] if self.max_history_messages else []


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


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


def parse_decoding(text: str | None) -> DecodingSettings:
    """Decoding defaults from a preset name (Greedy, Balanced, Creative) or a JSON object of
    DecodingSettings fields, as given to `--decoding` or the TALKLIKE_DECODING variable."""
    text = (text or "").strip()
    if not text:
        return dataclasses.replace(PRESETS["Greedy"])
    if text in PRESETS:
        return dataclasses.replace(PRESETS[text])
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise UserError(f"decoding: {text[:60]!r}; expected {', '.join(PRESETS)} or a JSON object of settings") from None
    known = {item.name for item in fields(DecodingSettings)}
    if not isinstance(values, dict) or set(values) - known:
        unknown = sorted(set(values) - known) if isinstance(values, dict) else type(values).__name__
        raise UserError(f"decoding: unknown {unknown}; expected fields among {', '.join(sorted(known))}")
    return DecodingSettings(**values).validate()


def decoding_text(settings: DecodingSettings) -> str:
    """The JSON that `parse_decoding` reads back into the same settings."""
    return json.dumps(dataclasses.asdict(settings), separators=(",", ":"))
