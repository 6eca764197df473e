"""Reading a Telegram Desktop export: the file, its list of chats, and who made it.

A file that fails a strict JSON parse is parsed again after repairing Telegram's invalid `\\xNN`
escapes. The exporting account (whose messages are "me") comes from personal_information, else
Saved Messages, else personal chats; a single-chat export may not reveal it. Turning the chats into
Conversations is telegram.py's job.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from training.conversation import ImportResult
from training.data.sources import SourceFile, parse_json
from training.errors import UserError

# Control characters are written as `\xNN`, which JSON does not allow. Escaped backslashes are
# matched as pairs first, so in `\\x41` (a literal backslash, then "x41") nothing is replaced.
_BACKSLASH_PAIR_OR_HEX_ESCAPE = re.compile(r"\\(?:\\|x[0-9A-Fa-f]{2})")

_SAVED_MESSAGES = "Saved Messages"
DELETED_ACCOUNT = "Deleted Account"


@dataclass
class Account:
    """The person who made the export: their messages carry their from_id."""

    from_id: str
    name: str | None


@dataclass
class Export:
    source: SourceFile
    dialogs: list[dict]
    account: Account | None


def read_export(source: SourceFile, result: ImportResult) -> Export:
    root, repaired = _load_json(source)
    if repaired:
        result.warnings.append(f"{source.name}: repaired Telegram's invalid \\xNN escapes")
    if not isinstance(root, dict):
        raise UserError(f"{source.name}: expected a JSON object (Telegram result.json), found {json_kind(root)}")
    if "messages" in root:
        dialogs = [root]
    else:
        dialogs = []
        for section in ("chats", "left_chats"):
            dialogs.extend(_dialog_list(root, section, source.name))
        if not dialogs:
            result.warnings.append(f"{source.name}: a Telegram account export with no chats in it")
    return Export(source, dialogs, _find_account(root, dialogs, source.name))


def _load_json(source: SourceFile) -> tuple[Any, bool]:
    """The parsed file, and whether Telegram's `\\xNN` escapes had to be repaired first."""
    text = source.text()
    try:
        return json.loads(text), False
    except ValueError:
        pass  # strict parse first: valid files never pay for the repair
    except RecursionError:
        raise UserError(f"{source.name}: JSON nested too deeply to be a Telegram export") from None
    repaired = _BACKSLASH_PAIR_OR_HEX_ESCAPE.sub(_as_json_escape, text) if "\\x" in text else text
    try:
        return parse_json(repaired, source.name), repaired != text
    except RecursionError:
        raise UserError(f"{source.name}: JSON nested too deeply to be a Telegram export") from None
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise UserError(f"{source.name}: not valid JSON ({exc})") from None


def _as_json_escape(match: re.Match) -> str:
    escape = match.group()
    return escape if escape == "\\\\" else "\\u00" + escape[2:]


def _dialog_list(root: dict, section: str, name: str) -> list[dict]:
    block = root.get(section)
    if block is None:
        return []
    chats = block.get("list") if isinstance(block, dict) else None
    if not isinstance(chats, list):
        raise UserError(f"{name}: field `{section}.list` should be a list of chats")
    for index, dialog in enumerate(chats):
        if not isinstance(dialog, dict):
            raise UserError(f"{name}: `{section}.list[{index}]` should be a chat, found {json_kind(dialog)}")
    return chats


def _find_account(root: dict, dialogs: list[dict], name: str) -> Account | None:
    """Who exported: personal_information, else Saved Messages (its id is the owner's), else the
    one sender in personal chats who is not the chat's peer (a personal chat's id is the peer's)."""
    person = root.get("personal_information")
    from_id = display = None
    if isinstance(person, dict) and person.get("user_id") is not None:
        from_id = normalize_id(person.get("user_id"), name, "personal_information.user_id")
        parts = [person.get("first_name"), person.get("last_name")]
        if any(part is not None and not isinstance(part, str) for part in parts):
            raise UserError(f"{name}: `personal_information` names should be strings")
        display = " ".join(part.strip() for part in parts if part and part.strip()) or None
    if from_id is None:
        saved = [d for d in dialogs if d.get("type") == "saved_messages" and d.get("id") is not None]
        if saved:
            from_id = normalize_id(saved[0]["id"], name, "id")
    if from_id is None:
        from_id = _owner_of_personal_chats(dialogs, name)
    if from_id is None:
        return None
    return Account(from_id, display or _most_common_name(dialogs, from_id, name))


def _owner_of_personal_chats(dialogs: list[dict], name: str) -> str | None:
    others: Counter = Counter()
    for dialog in dialogs:
        if dialog.get("type") != "personal_chat" or dialog.get("id") is None:
            continue
        peer = normalize_id(dialog["id"], name, "id")
        for message in dialog_messages(dialog, name):
            if not isinstance(message, dict):
                continue  # reported with its position when the chat is converted
            sender = normalize_id(message.get("from_id"), name, "from_id")
            if sender is not None and sender != peer:
                others[sender] += 1
    return others.most_common(1)[0][0] if others else None


def _most_common_name(dialogs: list[dict], from_id: str, name: str) -> str | None:
    names: Counter = Counter()
    for dialog in dialogs:
        for message in dialog_messages(dialog, name):
            if (
                isinstance(message, dict)
                and isinstance(message.get("from"), str)
                and (normalize_id(message.get("from_id"), name, "from_id") == from_id)
            ):
                names[message["from"]] += 1
    return names.most_common(1)[0][0] if names else None


def normalize_id(value: Any, name: str, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # old exports: bare user numbers
        return f"user{value}"
    raise UserError(f"{name}: field `{field}` should be a string or a number, found {json_kind(value)}")


def dialog_messages(dialog: dict, name: str) -> list:
    messages = dialog.get("messages")
    if not isinstance(messages, list):
        title = dialog_title(dialog)
        raise UserError(f"{name}: field `messages` of chat {title!r} should be a list, found {json_kind(messages)}")
    return messages


def dialog_title(dialog: dict) -> str:
    title = dialog.get("name")
    if isinstance(title, str) and title.strip():
        return title
    if dialog.get("type") == "saved_messages":
        return _SAVED_MESSAGES
    if dialog.get("type") == "replies":
        return "Replies"
    if "name" in dialog and title is None:
        return DELETED_ACCOUNT
    return f"Telegram chat {dialog.get('id')}"


def json_kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
