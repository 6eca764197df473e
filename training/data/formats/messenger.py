"""Facebook Messenger and Instagram "Download Your Information" JSON, plus Messenger's E2EE export.

A DYI thread is a folder of `message_N.json` files (newest slice first, messages newest first,
every string mojibake'd); the 2024+ end-to-end-encrypted export is one camelCase `Name_N.json`
per thread. The same chat can sit in the DYI inbox, its `e2ee_cutover/` section and the E2EE
export at once, so threads with the same title and people are merged and their overlap dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import PurePosixPath
from typing import Any

from training.conversation import Conversation, Drop, ImportResult, Message
from training.data.collector import collector_paused
from training.data.formats.base import ImportOptions
from training.data.formats.messenger_text import is_generated_notice, repair_mojibake
from training.data.sources import SourceFile
from training.errors import UserError

NAME = "messenger"
LABEL = "Facebook Messenger / Instagram"

_DYI_PARTICIPANTS = re.compile(r'"participants"\s*:\s*\[\s*(?:\{\s*"name"\s*:|\])')
_E2EE_PARTICIPANTS = re.compile(r'"participants"\s*:\s*\[\s*(?:"|\])')
_NO_MESSAGES = re.compile(r'"messages"\s*:\s*\[\s*\]')
_DYI_FILE = re.compile(r"message_(\d+)\.json", re.IGNORECASE)
# A timestamp beyond this (ms) is no date at all; it also keeps `/ 1000` from overflowing.
_MAX_MS = 10**15


def sniff(source: SourceFile) -> bool:
    """A DYI or E2EE thread object, judged from the first 64 KB only."""
    try:
        head = source.head()
        if not head.lstrip().startswith("{"):
            return False
        if '"threadName"' in head and _E2EE_PARTICIPANTS.search(head):
            return '"senderName"' in head or bool(_NO_MESSAGES.search(head))
        has_dyi_message = '"sender_name"' in head and '"timestamp' in head
        if _DYI_PARTICIPANTS.search(head):
            return has_dyi_message or bool(_NO_MESSAGES.search(head))
        # A re-saved file may list `participants` after a long `messages` array.
        return has_dyi_message and bool(_DYI_FILE.fullmatch(source.basename))
    except Exception:  # sniffing must never stop detection of the other formats
        return False


@dataclass(frozen=True)
class _Schema:
    """Where one export flavour keeps each field; DYI and E2EE name them differently."""

    sender: str
    text: str
    millis: str
    seconds: str | None  # only old DYI files count in seconds
    media: tuple[str, ...]
    unsent: tuple[str, ...]  # any of these true: the message is gone or hidden
    rare: frozenset[str] = frozenset()  # keys that send a message down the careful path

    def __post_init__(self) -> None:
        object.__setattr__(self, "rare", frozenset({"sticker", "share", "call_duration", "users", *self.media}))


_DYI = _Schema(
    "sender_name",
    "content",
    "timestamp_ms",
    "timestamp",
    ("photos", "videos", "audio_files", "gifs", "files"),
    ("is_unsent", "is_geoblocked_for_viewer", "is_unsent_image_by_messenger_kid_parent"),
)
_E2EE = _Schema("senderName", "text", "timestamp", None, ("media",), ("isUnsent",))
_SYSTEM_TYPES = {"Subscribe": Drop.SYSTEM, "Unsubscribe": Drop.SYSTEM, "Call": Drop.CALL}


@dataclass
class _Part:
    """One parsed file: thread header plus its kept messages in file order."""

    title: str
    participants: list[str]
    group_type: bool
    messages: list[Message]
    senders: set[str]
    number: int = 0  # N of message_N.json; orders the slices of one thread


@dataclass
class _Unit:
    """One thread as the export stores it: a DYI folder, or one E2EE (or loose) file."""

    id: str
    origin: str  # the folder holding it; two units of one origin are two different threads
    parts: list[_Part] = field(default_factory=list)

    def identity(self) -> tuple[str, frozenset[str]]:
        first = self.parts[0]
        people = first.participants or set().union(*(p.senders for p in self.parts))
        return first.title, frozenset(people)


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    """All Messenger/Instagram files -> one Conversation per thread, oldest message first."""
    result = ImportResult()
    units: dict[str, _Unit] = {}
    with collector_paused():
        for index, source in enumerate(sources):
            _unit_for(source, index, units).parts.append(_read_part(source, result))
            result.formats[LABEL] += 1
        for thread in _merge_units(list(units.values())):
            conversation = _conversation(thread, result)
            if conversation.messages:
                result.conversations.append(conversation)
    return result


def _unit_for(source: SourceFile, index: int, units: dict[str, _Unit]) -> _Unit:
    parent = source.parent
    numbered = _DYI_FILE.fullmatch(source.basename)
    if numbered and parent not in ("", "."):
        key, unit_id, origin = parent, parent, str(PurePosixPath(parent).parent)
    else:  # an E2EE thread file, or a file given on its own (two may share a bare name)
        key, unit_id, origin = f"{index}:{source.name}", source.name, parent
    unit = units.get(key)
    if unit is None:
        unit = units[key] = _Unit(unit_id, origin)
    return unit


def _read_part(source: SourceFile, result: ImportResult) -> _Part:
    try:
        data = source.json()
    except RecursionError:
        raise UserError(f"{source.name}: JSON nested too deeply to be a chat export") from None
    if not isinstance(data, dict):
        raise UserError(f"{source.name}: expected a JSON object with participants and messages")
    schema = _E2EE if "threadName" in data else _DYI
    title = _optional_string(data, "threadName" if schema is _E2EE else "title", source.name)
    participants = _participants(data.get("participants"), schema, source.name)
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise UserError(f"{source.name}: field 'messages' should be a list of messages")
    senders: set[str] = set()
    kept = _convert(messages, schema, source.name, result, senders)
    numbered = _DYI_FILE.fullmatch(source.basename)
    return _Part(
        title=repair_mojibake(title or ""),
        participants=participants,
        group_type=data.get("thread_type") == "RegularGroup",
        messages=kept,
        senders=senders,
        number=int(numbered.group(1)) if numbered else 0,
    )


def _optional_string(data: dict, key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise UserError(f"{where}: field '{key}' should be a string")
    return value


def _participants(raw: Any, schema: _Schema, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(f"{where}: field 'participants' should be a list")
    names = []
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str):
            shape = "a name string" if schema is _E2EE else 'an object like {"name": "..."}'
            raise UserError(f"{where}: participants[{index}] should be {shape}")
        names.append(repair_mojibake(name))
    return names


def _convert(items: list, schema: _Schema, where: str, result: ImportResult, senders: set[str]) -> list[Message]:
    """Raw messages -> kept Messages; the hot loop of the importer, so kept flat and allocation-light."""
    kept: list[Message] = []
    dropped = result.dropped
    names: dict[str, str] = {}  # raw sender -> repaired; a thread has few senders
    text_key, sender_key, millis_key = schema.text, schema.sender, schema.millis
    first_flag, *other_flags = schema.unsent
    rare_keys = schema.rare
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise UserError(f"{where}: messages[{index}] should be an object")
        text = item.get(text_key)
        if type(text) is not str:
            if text is not None:
                raise UserError(f"{where}: messages[{index}].{text_key} should be a string")
            text = ""
        elif not text.isascii():
            text = repair_mojibake(text)
        if item.get(first_flag) or (other_flags and any(map(item.get, other_flags))):
            dropped[Drop.UNSENT] += 1
            continue
        notice = len(text) < 300 and is_generated_notice(text)
        kind = item.get("type")
        if (kind != "Generic" and kind is not None) or not rare_keys.isdisjoint(item):
            if kind is not None and type(kind) is not str:
                raise UserError(f'{where}: messages[{index}].type should be a string such as "Generic"')
            reason = _drop_reason(item, text, notice, kind, schema)
            if reason:
                dropped[reason] += 1
                continue
        if notice or not text or text.isspace():
            dropped[Drop.SYSTEM if notice else Drop.EMPTY] += 1
            continue
        raw_sender = item.get(sender_key)
        sender = names.get(raw_sender) if type(raw_sender) is str else None
        if sender is None:
            sender = _new_sender(raw_sender, names, where, f"messages[{index}].{sender_key}")
            if sender is None:
                dropped[Drop.SYSTEM] += 1  # nobody to attribute it to: a notice, not a person
                continue
        millis = item.get(millis_key)
        if type(millis) is not int or not 0 <= millis < _MAX_MS:
            millis = _other_millis(item, schema, where, index)
        kept.append(Message(sender, text, millis / 1000))
    senders.update(names.values())
    return kept


def _new_sender(raw: Any, names: dict[str, str], where: str, field_path: str) -> str | None:
    if raw is None or raw == "":
        return None
    if type(raw) is not str:
        raise UserError(f"{where}: {field_path} should be a string")
    names[raw] = repair_mojibake(raw)
    return names[raw]


def _other_millis(item: dict, schema: _Schema, where: str, index: int) -> float:
    """The time of a message whose usual field is missing or odd: old exports count seconds."""
    millis = item.get(schema.millis)
    if type(millis) is float and 0 <= millis < _MAX_MS:  # a re-saved file; NaN fails the range
        return millis
    if millis is None and schema.seconds is not None:
        seconds = item.get(schema.seconds)
        if type(seconds) in (int, float) and 0 <= seconds < _MAX_MS // 1000:
            return seconds * 1000
        raise UserError(
            f"{where}: messages[{index}] needs {schema.millis} or {schema.seconds}, "
            "a whole number of milliseconds or seconds since 1970"
        )
    raise UserError(f"{where}: messages[{index}].{schema.millis} should be a whole number of milliseconds since 1970")


def _drop_reason(item: dict, text: str, notice: bool, kind: Any, schema: _Schema) -> str | None:
    """Why a message with an unusual key or type is not a person's text, or None to keep it."""
    if kind in _SYSTEM_TYPES:
        return _SYSTEM_TYPES[kind]
    if "call_duration" in item:
        return Drop.CALL
    if item.get("sticker"):
        return Drop.STICKER
    if "users" in item and kind is None:
        return Drop.SYSTEM  # 2024+ Subscribe/Unsubscribe events lost their type
    typed = not notice and text and not text.isspace()
    if "share" in item or kind == "Share":
        share = item.get("share")
        previews = [repair_mojibake(v) for v in share.values() if isinstance(v, str)] if isinstance(share, dict) else []
        if not typed or text.strip() in previews:
            return Drop.SHARE  # only the link or its preview text: nothing the person wrote
    if not typed and any(item.get(key) for key in schema.media):
        return Drop.MEDIA
    return None


def _merge_units(units: list[_Unit]) -> list[list[_Unit]]:
    """Units with the same title and people are one chat seen through several sections."""
    threads: list[list[_Unit]] = []
    by_identity: dict[tuple[str, frozenset[str]], list[list[_Unit]]] = {}
    for unit in units:
        unit.parts.sort(key=attrgetter("number"))
        candidates = by_identity.setdefault(unit.identity(), [])
        home = next((t for t in candidates if all(u.origin != unit.origin for u in t)), None)
        if home is None:
            home = []
            candidates.append(home)
            threads.append(home)
        home.append(unit)
    return threads


def _conversation(thread: list[_Unit], result: ImportResult) -> Conversation:
    messages = [message for unit in thread for message in _chronological(unit)]
    if len(thread) > 1:
        messages.sort(key=attrgetter("timestamp"))
        messages = _without_duplicates(messages, result)
    parts = [part for unit in thread for part in unit.parts]
    people = set().union(*(p.participants for p in parts), *(p.senders for p in parts))
    first = parts[0]
    title = first.title or ", ".join(sorted(first.participants)) or thread[0].id
    return Conversation(
        id=thread[0].id,
        title=title,
        messages=messages,
        source_format=NAME,
        is_group=any(p.group_type for p in parts) or len(people) > 2,
    )


def _chronological(unit: _Unit) -> list[Message]:
    # Slices run message_1 (newest) upwards and each lists newest first, so reversing the
    # concatenation keeps same-millisecond messages in the order they were sent.
    messages = [m for part in unit.parts for m in part.messages]
    if len(messages) > 1 and messages[0].timestamp > messages[-1].timestamp:
        messages.reverse()
    messages.sort(key=attrgetter("timestamp"))
    return messages


def _without_duplicates(messages: list[Message], result: ImportResult) -> list[Message]:
    seen: set[tuple[str, float | None, str]] = set()
    unique = []
    for message in messages:
        key = (message.sender, message.timestamp, message.text)
        if key in seen:
            result.dropped[Drop.DUPLICATE] += 1
            continue
        seen.add(key)
        unique.append(message)
    return unique
