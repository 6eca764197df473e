"""Fine-tuning data set records to talklike's shapes: which shape a record has, and its turns.

Shapes: OpenAI messages, ShareGPT, Alpaca, prompt/completion (and prompt/response,
question/answer) and {"text"}. Chat records become one Conversation each with senders "user" and
"assistant" (the persona stage treats "assistant" as "me"); {"text"} records become Documents.
OpenAI `weight: 0` assistant turns are kept as ordinary messages: weighting is a training choice,
not something this importer decides. Reading the files themselves is dataset_files' job.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.conversation import Conversation, Document, Drop, ImportResult, Message
from training.errors import UserError

_SKIP = "skip"  # tool calls and tool output: not written by a person
_OPENAI_ROLES = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
    "tool": _SKIP,
    "function": _SKIP,
    "ipython": _SKIP,
}
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
    "observation": _SKIP,
    "function_call": _SKIP,
    "function": _SKIP,
    "tool": _SKIP,
}
KNOWN_SHAPES = (
    "messages, conversations, instruction/output, prompt/completion, prompt/response, question/answer or text"
)
CSV_HEADERS = "prompt,completion / prompt,response / instruction,output / question,answer / text"
# A {"text"} record with any of these is one message of a chat export (Slack, Telegram), not a document.
_MESSAGE_KEYS = {"user", "sender", "sender_name", "author", "from", "from_id", "ts", "timestamp", "date", "type"}


@dataclass
class _Turns:
    messages: list[Message]
    system: list[str]


@dataclass(frozen=True)
class Shape:
    name: str  # shown in result.formats, e.g. "ShareGPT"
    keys: tuple[str, ...]  # every record of this shape has these
    expected: str  # what an error says a record should look like
    convert: Callable[[dict, str, Counter], _Turns] | None  # None: raw text, not turns
    looks_like: Callable[[dict], bool] = lambda record: True


# ---------------------------------------------------------------- record shapes to turns


def _first_item_has(key: str, *alternatives: str) -> Callable[[dict], bool]:
    """A list of dicts whose first item has a role key, like TRL's `is_conversational`."""

    def check(record: dict) -> bool:
        items = record[key]
        if not isinstance(items, list):
            return False
        return not items or (isinstance(items[0], dict) and any(k in items[0] for k in alternatives))

    return check


def _openai(record: dict, where: str, drops: Counter) -> _Turns:
    return _turns(record["messages"], f"{where}: messages", drops, [("role", "content")], _OPENAI_ROLES)


def _sharegpt(record: dict, where: str, drops: Counter) -> _Turns:
    # LLaMA-Factory also stores OpenAI-style role/content items under "conversations".
    turns = _turns(
        record["conversations"],
        f"{where}: conversations",
        drops,
        [("from", "value"), ("role", "content")],
        _SHAREGPT_ROLES,
    )
    turns.system[:0] = _optional_text(record, "system", where)
    return turns


def _alpaca(record: dict, where: str, drops: Counter) -> _Turns:
    turns = _Turns([], _optional_text(record, "system", where))
    history = record.get("history") or []
    if not isinstance(history, list):
        raise expected_error(f"{where}: history", "a list of [user, assistant] pairs", history)
    for index, pair in enumerate(history):
        at = f"{where}: history[{index}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise expected_error(at, "a [user, assistant] pair of strings", pair)
        _add(turns, "user", pair[0], drops)
        _add(turns, "assistant", pair[1], drops)
    parts = [_required_text(record, key, where) for key in ("instruction", "input") if key in record]
    _add(turns, "user", "\n".join(part for part in parts if part.strip()), drops)
    _add(turns, "assistant", _required_text(record, "output", where), drops)
    return turns


def _pair(prompt_key: str, reply_key: str) -> Callable[[dict, str, Counter], _Turns]:
    """Prompt and reply as strings (standard) or as message lists (TRL conversational)."""

    def convert(record: dict, where: str, drops: Counter) -> _Turns:
        turns = _Turns([], _optional_text(record, "system", where))
        for key, role in ((prompt_key, "user"), (reply_key, "assistant")):
            value = record[key]
            if isinstance(value, list):
                part = _turns(value, f"{where}: {key}", drops, [("role", "content")], _OPENAI_ROLES)
                turns.messages += part.messages
                turns.system += part.system
            else:
                _add(turns, role, _required_text(record, key, where), drops)
        return turns

    return convert


def _pair_shape(prompt_key: str, reply_key: str) -> Shape:
    return Shape(
        f"{prompt_key}/{reply_key}",
        (prompt_key, reply_key),
        f'an object with "{prompt_key}" and "{reply_key}"',
        _pair(prompt_key, reply_key),
    )


_SHAPES = [
    Shape(
        "OpenAI messages",
        ("messages",),
        'an object with "messages": [{"role", "content"}, ...]',
        _openai,
        _first_item_has("messages", "role"),
    ),
    Shape(
        "ShareGPT",
        ("conversations",),
        'an object with "conversations": [{"from", "value"}, ...]',
        _sharegpt,
        _first_item_has("conversations", "from", "role"),
    ),
    Shape("Alpaca", ("instruction", "output"), 'an object with "instruction" and "output"', _alpaca),
    _pair_shape("prompt", "completion"),
    _pair_shape("prompt", "response"),
    _pair_shape("question", "answer"),
    Shape(
        "text", ("text",), 'an object with a "text" string', None, lambda record: not _MESSAGE_KEYS.intersection(record)
    ),
]


def detect_shape(record: Any) -> Shape | None:
    if not isinstance(record, dict):
        return None
    for shape in _SHAPES:
        if all(key in record for key in shape.keys) and shape.looks_like(record):
            return shape
    return None


def _turns(items: Any, where: str, drops: Counter, key_pairs: list[tuple[str, str]], roles: dict) -> _Turns:
    if not isinstance(items, list):
        raise expected_error(where, "a list of messages", items)
    turns = _Turns([], [])
    for index, item in enumerate(items):
        role_key, text_key = _keys_of(item, key_pairs, f"{where}[{index}]")
        role = roles.get(item[role_key].lower()) if isinstance(item[role_key], str) else None
        if role is None:
            raise expected_error(f"{where}[{index}].{role_key}", "one of " + ", ".join(sorted(roles)), item[role_key])
        content = item.get(text_key)
        if role == _SKIP or (content is None and item.get("tool_calls")):
            drops[Drop.SYSTEM] += 1
            continue
        text = content if isinstance(content, str) else _content_text(content, f"{where}[{index}].{text_key}")
        if not text.strip():
            drops[Drop.MEDIA if isinstance(content, list) and content else Drop.EMPTY] += 1
        elif role == "system":
            turns.system.append(text)
        else:
            turns.messages.append(Message(sender=role, text=text, timestamp=None))
    return turns


def _keys_of(item: Any, key_pairs: list[tuple[str, str]], where: str) -> tuple[str, str]:
    """The (role key, text key) pair this message uses, e.g. ("from", "value") in ShareGPT."""
    if isinstance(item, dict):
        for role_key, text_key in key_pairs:
            if role_key in item:
                return role_key, text_key
    raise expected_error(where, " or ".join(f'an object with "{r}" and "{t}"' for r, t in key_pairs), item)


def _content_text(content: Any, where: str) -> str:
    """A message's text; for a multimodal list of parts, its text parts joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, (str, dict))]
        return "\n".join(t for t in texts if isinstance(t, str) and t.strip())
    raise expected_error(where, "text or a list of content parts", content)


def _add(turns: _Turns, role: str, text: str, drops: Counter) -> None:
    if text.strip():
        turns.messages.append(Message(sender=role, text=text, timestamp=None))
    else:
        drops[Drop.EMPTY] += 1


def _required_text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value or ""
    raise expected_error(f'{where}: "{key}"', "a string", value)


def _optional_text(record: dict, key: str, where: str) -> list[str]:
    text = _required_text(record, key, where)
    return [text] if text.strip() else []


# ---------------------------------------------------------------- errors


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(repr(k) for k in keys[:6]) + (", ..." if len(keys) > 6 else "")
        return f"an object with keys {shown}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return repr(value[:40] + ("..." if len(value) > 40 else ""))
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value)}"


def expected_error(where: str, expected: str, found: Any) -> UserError:
    return UserError(f"{where}: expected {expected} but found {_describe(found)}")


# ---------------------------------------------------------------- records to conversations


def keep_record(value: dict, shape: Shape, key: str, label: str, where: str, result: ImportResult) -> int:
    """Adds the record's Conversation or Document to result; 1 when something was kept."""
    if shape.convert is None:
        text = _required_text(value, "text", where)
        if not text.strip():
            result.dropped[Drop.EMPTY] += 1
            return 0
        result.documents.append(Document(id=key, text=text, source_format=label))
        return 1
    turns = shape.convert(value, where, result.dropped)
    if not turns.messages:
        return 0
    system = "\n\n".join(turns.system) or None
    result.conversations.append(
        Conversation(id=key, title=key, messages=turns.messages, system=system, source_format=label)
    )
    return 1
