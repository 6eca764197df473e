"""How a conversation becomes the model's prompt: one builder for training rows and for chat.

The data stage (`training/data/persona.py`) turns an export's sessions into training rows with these
functions, and the chat stage (`training/chat/generate.py`) turns a chat history into the prompt with
the same functions and the same `PromptStyle`, read from the data set's manifest. So a persona sees at
chat time exactly the prompt it was trained on (tests/test_prompt_parity.py checks it token for token).

    messages (speaker, text) --merge_turns--> turns --turn_messages--> user/assistant messages
        --context_window--> the prompt's turns; system_messages() go first
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from operator import attrgetter
from typing import Any, NamedTuple

from training.conversation import MAX_MESSAGE_CHARS, Message
from training.errors import UserError

NEWLINE, PIPE = "\n", "|"


@dataclass(frozen=True)
class PromptStyle:
    """The shaping settings a prompt is built with; the data stage chooses them, chat repeats them."""

    separator: str = NEWLINE  # joins the messages of one turn; seed 000 used "|"
    system_prompt: str = ""  # as the model saw it ("{me}" already replaced); "" = none
    context_turns: int | None = None  # earlier turns kept in a prompt; None = all that fit
    name_prefix_in_groups: bool = True  # "Maya: ..." before each turn of a group chat

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str, seq2seq: bool = False) -> PromptStyle:
        """A style from a manifest's or talklike.json's "prompt" object; a missing separator is the model's default."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: prompt: expected an object of prompt settings, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known and value is not None}
        values.setdefault("separator", default_separator(seq2seq))
        checks = {"separator": str, "system_prompt": str, "context_turns": int, "name_prefix_in_groups": bool}
        for key, kind in checks.items():
            if key in values and (type(values[key]) is not kind):  # bool is an int: exact types only
                raise UserError(f"{where}: prompt.{key}: {values[key]!r} is not {_KIND_WORDS[kind]}")
        if values.get("context_turns") is not None and values["context_turns"] < 1:
            raise UserError(f"{where}: prompt.context_turns: {values['context_turns']} must be at least 1")
        return cls(**values)


_KIND_WORDS = {str: "text", int: "a whole number", bool: "true/false"}


def default_separator(seq2seq: bool) -> str:
    """For data without a manifest: seq2seq runs joined with "|" (seed 000), causal turns kept newlines."""
    return PIPE if seq2seq else NEWLINE


class Turn(NamedTuple):
    """What one person said: one message, or (after merge_turns) a run of their consecutive messages."""

    speaker: str  # a name, or "" where the history does not say who
    text: str
    mine: bool  # written by the persona: the model's own (assistant) side


def merge_turns(messages: Iterable[Turn], separator: str) -> list[Turn]:
    """Consecutive messages by one speaker become one turn, joined with the separator."""
    return [_joined(run, separator) for _, run in groupby(messages, key=_SPEAKER_AND_SIDE)]


def message_turns(messages: Iterable[Message], me: str, separator: str) -> list[Turn]:
    """merge_turns over an export's messages, `me`'s as the persona's: the same turns as
    `merge_turns(Turn(m.sender, m.text, m.sender == me) for m in messages)`, without building a
    Turn per message (a million-message export has a million of them)."""
    turns = []
    for sender, run in groupby(messages, key=_SENDER):
        texts = list(map(_TEXT, run))
        text = texts[0] if len(texts) == 1 else separator.join(texts)
        turns.append(_new_turn((sender, text, sender == me)))
    return turns


_SPEAKER_AND_SIDE = attrgetter("speaker", "mine")
_SENDER, _TEXT = (
    attrgetter("sender"),
    attrgetter("text"),
)  # one sender is always on one side, so it alone cuts the same runs
_new_turn = partial(tuple.__new__, Turn)  # Turn((speaker, text, mine)) without NamedTuple's Python-level __new__


def _joined(run: Iterator[Turn], separator: str) -> Turn:
    first = next(run)
    rest = [turn.text for turn in run]
    return first._replace(text=separator.join([first.text, *rest])) if rest else first


def turn_messages(turns: Sequence[Turn], name_prefix: bool) -> list[dict[str, str]]:
    """Turns as chat messages: mine as "assistant", everyone else's as "user".

    Consecutive turns by other people (a group chat) become one user message, a turn per line,
    each after its speaker's name when `name_prefix`, so the model knows who said what. A message
    keeps only its last MAX_MESSAGE_CHARS characters: a long run of turns would otherwise be copied
    (and tokenized) into every prompt of its session, and merging thousands of them would be quadratic.
    """
    messages: list[dict[str, str]] = []
    for turn in turns:
        if turn.mine:
            messages.append({"role": "assistant", "content": turn.text[-MAX_MESSAGE_CHARS:]})
            continue
        spoken = f"{turn.speaker}: {turn.text}" if name_prefix and turn.speaker else turn.text
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"] = (messages[-1]["content"] + NEWLINE + spoken)[-MAX_MESSAGE_CHARS:]
        else:
            messages.append({"role": "user", "content": spoken[-MAX_MESSAGE_CHARS:]})
    return messages


def context_window(messages: list[dict[str, str]], end: int, context_turns: int | None) -> list[dict[str, str]]:
    """The messages a reply at `end` sees: at most `context_turns` of them, starting with a user's.

    Chat templates expect the user to speak first, so an assistant message at the window's start
    is left out too.
    """
    start = 0 if context_turns is None else max(0, end - context_turns)
    if start < end and messages[start]["role"] == "assistant":
        start += 1
    return messages[start:end]


def system_messages(system_prompt: str | None) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt}] if system_prompt else []


def seq2seq_source(messages: Iterable[dict[str, str]], separator: str) -> str:
    """An encoder-decoder's input: the messages' text joined with the separator, system left out.

    Newlines become the separator too: seed 000 joined messages with '|' because some tokenizers
    turn newlines into spaces, which would erase the message boundaries the persona is made of.
    """
    return separator.join(
        m["content"].replace(NEWLINE, separator) for m in messages if m["role"] != "system" and m["content"]
    )


# ---- chat histories -----------------------------------------------------------------------------


def chat_messages(history: Sequence[dict], style: PromptStyle) -> list[dict[str, str]]:
    """The model's messages for a chat history in OpenAI form, built as the training rows were.

    "assistant" messages are the persona's (several bubbles in a row are one turn again); "user"
    messages are the others', and a `name` on them ({"role": "user", "name": "Maya", ...}) makes it
    a group chat, prefixed with names as in training. The newest message should be a user's: the
    one to answer. A system message in the history replaces the style's system prompt.
    """
    turns, system = history_turns(history)
    group = any(turn.speaker for turn in turns if not turn.mine)
    messages = turn_messages(merge_turns(turns, style.separator), name_prefix=group and style.name_prefix_in_groups)
    window = context_window(messages, len(messages), style.context_turns)
    return system_messages(style.system_prompt if system is None else system) + window


def history_turns(history: Sequence[dict]) -> tuple[list[Turn], str | None]:
    """The text turns of a history, and its last system message (None when it has none)."""
    turns: list[Turn] = []
    system = None
    for message in history:
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):  # Gradio can send content as [{"type": "text", "text": ...}] parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            continue  # files, tool calls
        if role == "system":
            system = content
        elif role in ("user", "assistant"):
            speaker = message.get("name") if role == "user" and isinstance(message.get("name"), str) else ""
            turns.append(Turn(speaker, content, role == "assistant"))
    return turns, system
