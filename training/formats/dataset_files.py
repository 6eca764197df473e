"""Fine-tuning data sets: OpenAI messages, ShareGPT, Alpaca, prompt/completion and {"text"} files.

A file is a JSON array, JSON Lines, or a CSV with a header row; its shape comes from the first
record (or the header), and every later record must have the same shape, so a half-converted
file fails on its first bad line instead of training on a mix. Chat records become one
Conversation each with senders "user" and "assistant" (the persona stage treats "assistant" as
"me"); {"text"} records become Documents. OpenAI `weight: 0` assistant turns are kept as
ordinary messages: weighting is a training choice, not something this importer decides.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from ..conversation import DROP_EMPTY, DROP_MEDIA, DROP_SYSTEM, Conversation, Document, ImportResult, Message
from ..errors import UserError
from ..sources import SourceFile, parse_json
from .base import ImportOptions

NAME = "dataset"
LABEL = "Fine-tuning data set"

# No other reader wants these; claiming them here turns "unknown format" into a line-N error.
ALWAYS_CLAIMED_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
_SKIP = "skip"  # tool calls and tool output: not written by a person
_OPENAI_ROLES = {
    "user": "user", "assistant": "assistant", "system": "system", "developer": "system",
    "tool": _SKIP, "function": _SKIP, "ipython": _SKIP,
}
_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
    "system": "system", "observation": _SKIP, "function_call": _SKIP, "function": _SKIP, "tool": _SKIP,
}
_KNOWN_SHAPES = "messages, conversations, instruction/output, prompt/completion, prompt/response, question/answer or text"
_CSV_HEADERS = "prompt,completion / prompt,response / instruction,output / question,answer / text"
# A {"text"} record with any of these is one message of a chat export (Slack, Telegram), not a document.
_MESSAGE_KEYS = {"user", "sender", "sender_name", "author", "from", "from_id", "ts", "timestamp", "date", "type"}
_DECODER = json.JSONDecoder()
_IDENTIFIER = re.compile(r"^\w+$")


@dataclass
class _Turns:
    messages: list[Message]
    system: list[str]


@dataclass(frozen=True)
class _Shape:
    name: str  # shown in result.formats, e.g. "ShareGPT"
    keys: tuple[str, ...]  # every record of this shape has these
    expected: str  # what an error says a record should look like
    convert: Callable[[dict, str, Counter], _Turns] | None  # None: raw text, not turns
    looks_like: Callable[[dict], bool] = lambda record: True


@dataclass
class _Record:
    number: int  # line for JSONL/CSV, 1-based position for a JSON array
    where: str  # "line 3" / "item 3"
    value: Any


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
    turns = _turns(record["conversations"], f"{where}: conversations", drops,
                   [("from", "value"), ("role", "content")], _SHAREGPT_ROLES)
    turns.system[:0] = _optional_text(record, "system", where)
    return turns


def _alpaca(record: dict, where: str, drops: Counter) -> _Turns:
    turns = _Turns([], _optional_text(record, "system", where))
    history = record.get("history") or []
    if not isinstance(history, list):
        raise _expected(f"{where}: history", "a list of [user, assistant] pairs", history)
    for index, pair in enumerate(history):
        at = f"{where}: history[{index}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise _expected(at, "a [user, assistant] pair of strings", pair)
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


def _pair_shape(prompt_key: str, reply_key: str) -> _Shape:
    return _Shape(f"{prompt_key}/{reply_key}", (prompt_key, reply_key),
                  f'an object with "{prompt_key}" and "{reply_key}"', _pair(prompt_key, reply_key))


_SHAPES = [
    _Shape("OpenAI messages", ("messages",), 'an object with "messages": [{"role", "content"}, ...]',
           _openai, _first_item_has("messages", "role")),
    _Shape("ShareGPT", ("conversations",), 'an object with "conversations": [{"from", "value"}, ...]',
           _sharegpt, _first_item_has("conversations", "from", "role")),
    _Shape("Alpaca", ("instruction", "output"), 'an object with "instruction" and "output"', _alpaca),
    _pair_shape("prompt", "completion"),
    _pair_shape("prompt", "response"),
    _pair_shape("question", "answer"),
    _Shape("text", ("text",), 'an object with a "text" string', None,
           lambda record: not _MESSAGE_KEYS.intersection(record)),
]


def _detect(record: Any) -> _Shape | None:
    if not isinstance(record, dict):
        return None
    for shape in _SHAPES:
        if all(key in record for key in shape.keys) and shape.looks_like(record):
            return shape
    return None


def _turns(items: Any, where: str, drops: Counter, key_pairs: list[tuple[str, str]], roles: dict) -> _Turns:
    if not isinstance(items, list):
        raise _expected(where, "a list of messages", items)
    turns = _Turns([], [])
    for index, item in enumerate(items):
        role_key, text_key = _keys_of(item, key_pairs, f"{where}[{index}]")
        role = roles.get(item[role_key].lower()) if isinstance(item[role_key], str) else None
        if role is None:
            raise _expected(f"{where}[{index}].{role_key}", "one of " + ", ".join(sorted(roles)), item[role_key])
        content = item.get(text_key)
        if role == _SKIP or (content is None and item.get("tool_calls")):
            drops[DROP_SYSTEM] += 1
            continue
        text = content if isinstance(content, str) else _content_text(content, f"{where}[{index}].{text_key}")
        if not text.strip():
            drops[DROP_MEDIA if isinstance(content, list) and content else DROP_EMPTY] += 1
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
    raise _expected(where, " or ".join(f'an object with "{r}" and "{t}"' for r, t in key_pairs), item)


def _content_text(content: Any, where: str) -> str:
    """A message's text; for a multimodal list of parts, its text parts joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, (str, dict))]
        return "\n".join(t for t in texts if isinstance(t, str) and t.strip())
    raise _expected(where, "text or a list of content parts", content)


def _add(turns: _Turns, role: str, text: str, drops: Counter) -> None:
    if text.strip():
        turns.messages.append(Message(sender=role, text=text, timestamp=None))
    else:
        drops[DROP_EMPTY] += 1


def _required_text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value or ""
    raise _expected(f'{where}: "{key}"', "a string", value)


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


def _expected(where: str, expected: str, found: Any) -> UserError:
    return UserError(f"{where}: expected {expected} but found {_describe(found)}")


# ---------------------------------------------------------------- files to records


def _load(source: SourceFile) -> tuple[str, list[_Record], _Record | None]:
    """(container, records, CSV header as a record) of one file."""
    text = source.text()
    stripped = text.lstrip()
    if not stripped:
        raise UserError(f"{source.name}: the file is empty; expected data set records ({_KNOWN_SHAPES})")
    if source.suffix in {".csv", ".tsv"} or stripped[0] not in "[{":
        header, records = _csv_records(source, text)
        return "CSV", records, header
    container, records = _json_records(source, text)
    return container, records, None


def _json_records(source: SourceFile, text: str) -> tuple[str, list[_Record]]:
    if text.lstrip().startswith("["):
        items = _whole_json(source, text)
        return "JSON", [_Record(number, f"item {number}", item) for number, item in enumerate(items, 1)]
    # Split on "\n" only: str.splitlines would also cut at U+2028, which JSON strings may hold raw.
    lines = text.split("\n")
    records: list[_Record] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            # JSON strings cannot hold a raw line break, so an open string also means the value ran out.
            ran_out = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
            if not records and ran_out:  # the first value goes on past its line: one pretty-printed object
                return "JSON", [_Record(1, "item 1", _whole_json(source, text))]
            last = not any(rest.strip() for rest in lines[number:])
            hint = "; the file looks truncated" if last and ran_out else ""
            raise UserError(
                f"{source.name}: line {number}: not valid JSON at column {exc.colno} ({exc.msg}){hint}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{source.name}: line {number}: not readable JSON ({exc})") from None
        records.append(_Record(number, f"line {number}", value))
    return "JSONL", records


def _whole_json(source: SourceFile, text: str) -> Any:
    try:
        return parse_json(text, source.name)
    except (ValueError, RecursionError) as exc:  # limits json enforces beyond syntax (depth, huge ints)
        raise UserError(f"{source.name}: not readable JSON ({exc})") from None


def _csv_records(source: SourceFile, text: str) -> tuple[_Record | None, list[_Record]]:
    delimiter = _csv_delimiter(source, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: _Record | None = None
    records: list[_Record] = []
    start = 1
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                pass
            elif header is None:
                columns = [cell.strip().lower() for cell in row]
                header = _Record(start, f"line {start}", dict.fromkeys(columns, ""))
            elif len(row) != len(columns):
                raise UserError(
                    f"{source.name}: line {start}: expected {len(columns)} columns like the header but found "
                    f"{len(row)}; quote cells that hold {'tabs' if delimiter == chr(9) else repr(delimiter)} or line breaks"
                )
            else:
                records.append(_Record(start, f"line {start}", dict(zip(columns, row))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{source.name}: line {reader.line_num}: not valid CSV ({exc})") from None
    return header, records


def _csv_delimiter(source: SourceFile, text: str) -> str:
    """The delimiter under which the header is a known one (Excel in many locales writes ';')."""
    order = "\t,;" if source.suffix == ".tsv" else ",\t;"
    first_line = text.lstrip().split("\n", 1)[0]
    for delimiter in order:
        if _detect(_header_probe(first_line, delimiter)):
            return delimiter
    return order[0]


def _header_probe(line: str, delimiter: str) -> dict:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return {}
    return dict.fromkeys((cell.strip().lower() for cell in cells), "")


# ---------------------------------------------------------------- records to conversations


def _parse_file(source: SourceFile, result: ImportResult) -> None:
    container, records, header = _load(source)
    probe = header or (records[0] if records else None)
    if probe is None:
        raise UserError(f"{source.name}: no records; expected data set records ({_KNOWN_SHAPES})")
    shape = _detect(probe.value)
    if shape is None:
        if header is not None:
            found = "columns " + ", ".join(repr(column) for column in probe.value)
            raise UserError(f"{source.name}: {probe.where}: expected a header row with {_CSV_HEADERS} "
                            f"columns but found {found}")
        raise _expected(f"{source.name}: {probe.where}", f"one JSON object per record with {_KNOWN_SHAPES} fields",
                        probe.value)
    label = f"{shape.name} {container}"
    kept = 0
    for record in records:
        where = f"{source.name}: {record.where}"
        if not isinstance(record.value, dict) or not all(key in record.value for key in shape.keys):
            raise _expected(where, f"{shape.expected} like {probe.where}", record.value)
        kept += _keep(record, shape, label, where, source.name, result)
    if not kept:
        result.warnings.append(f"{source.name}: none of its {len(records)} records has any text")
    result.formats[label] += 1


def _keep(record: _Record, shape: _Shape, label: str, where: str, name: str, result: ImportResult) -> int:
    """Adds the record's Conversation or Document to result; 1 when something was kept."""
    key = f"{name}#{record.number}"
    if shape.convert is None:
        text = _required_text(record.value, "text", where)
        if not text.strip():
            result.dropped[DROP_EMPTY] += 1
            return 0
        result.documents.append(Document(id=key, text=text, source_format=label))
        return 1
    turns = shape.convert(record.value, where, result.dropped)
    if not turns.messages:
        return 0
    system = "\n\n".join(turns.system) or None
    result.conversations.append(
        Conversation(id=key, title=key, messages=turns.messages, system=system, source_format=label)
    )
    return 1


# ---------------------------------------------------------------- the reader protocol


def sniff(source: SourceFile) -> bool:
    if source.looks_binary():
        return False
    if source.suffix in ALWAYS_CLAIMED_SUFFIXES:
        return True
    try:
        return _detect(_probe(source)) is not None
    except (ValueError, RecursionError, csv.Error):
        return False


def _probe(source: SourceFile) -> Any:
    """The first record, or the CSV header as a record, read from the head of the file only."""
    head = source.head().lstrip()
    if head[:1] in ("[", "{"):
        start = re.match(r"\[\s*", head).end() if head[0] == "[" else 0
        try:
            return _DECODER.raw_decode(head, start)[0]
        except json.JSONDecodeError:
            # One record can outgrow the 64 KiB head (a long conversation); 4 MiB is still cheap.
            return _DECODER.raw_decode(source.head(4 * 1024 * 1024).lstrip(), start)[0]
    first_line = head.split("\n", 1)[0]
    for delimiter in ",\t;":
        probe = _header_probe(first_line, delimiter)
        # Without a .csv name only an unmistakable header counts, so a prose first line
        # like "Question, answer, and more" stays text.
        shape = _detect(probe)
        if len(probe) >= 2 and all(_IDENTIFIER.match(c) for c in probe) and shape and shape.convert:
            return probe
    return None


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    result = ImportResult()
    for source in sources:
        _parse_file(source, result)
    return result


def json_problem(source: SourceFile) -> str | None:
    """Why a JSON or JSON Lines file does not parse (without the file name), or None if it parses."""
    try:
        _json_records(source, source.text())
    except UserError as exc:
        return str(exc).removeprefix(f"{source.name}: ")
    return None
