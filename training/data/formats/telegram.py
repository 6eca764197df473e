"""Telegram Desktop "Export chat history" (`result.json`): one chat, or a whole account's chats.

The writer is `tdesktop: Telegram/SourceFiles/export/output/export_output_json.cpp`; what it does
and the traps it sets (invalid `\\xNN` escapes, `text` as string or list, null `from`, numeric
`from_id` in old exports) are in section 3 of chat-export-formats.md. This module recognises the
file and turns its chats into Conversations; telegram_export reads it and finds the exporting account.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from training.conversation import Conversation, Drop, ImportResult, Message
from training.data.formats.base import ImportOptions
from training.data.formats.telegram_export import (
    DELETED_ACCOUNT,
    Account,
    dialog_messages,
    dialog_title,
    json_kind,
    normalize_id,
    read_export,
)
from training.data.sources import SourceFile
from training.errors import UserError

NAME = "telegram"
LABEL = "Telegram"

_DIALOG_TYPES = (
    "personal_chat",
    "bot_chat",
    "private_group",
    "private_supergroup",
    "public_supergroup",
    "private_channel",
    "public_channel",
    "saved_messages",
    "replies",
)
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
# The writer's fixed key order for a single-chat export: [name,] type, id, messages.
_SINGLE_CHAT = re.compile(
    r'\s*\{\s*(?:"name"\s*:\s*(?:null|' + _JSON_STRING + r")\s*,\s*)?"
    r'"type"\s*:\s*"(?:' + "|".join(_DIALOG_TYPES) + r')"\s*,\s*'
    r'"id"\s*:\s*-?\d+\s*,\s*"messages"\s*:\s*\['
)
# A full-account export opens with "about" followed by one of its sections.
_FULL_EXPORT = re.compile(
    r'\s*\{\s*"about"\s*:\s*' + _JSON_STRING + r'\s*,\s*"(?:personal_information|profile_pictures|'
    r'stories|contacts|frequent_contacts|sessions|web_sessions|other_data|chats|left_chats)"\s*:'
)
_MESSAGES_KEY = re.compile(r'"messages"\s*:\s*\[')
_MESSAGE_TYPE = re.compile(r'"type"\s*:\s*"(?:message|service)"')
# Where a media path would be; never the sender's words.
_FILE_PLACEHOLDER = re.compile(r"\((?:File|Photo) (?:not included|exceeds maximum size|unavailable)[^)]*\)")

_CHANNEL_TYPES = {"private_channel", "public_channel"}
_GROUP_TYPES = {"private_group", "private_supergroup", "public_supergroup"}
_CALL_ACTIONS = {"phone_call", "group_call", "invite_to_group_call", "group_call_scheduled"}
_MEDIA_KEYS = ("photo", "file", "contact_information", "game_title", "invoice_information")


def sniff(source: SourceFile) -> bool:
    try:
        head = source.head()
        if not head.lstrip().startswith("{"):
            return False
        if _SINGLE_CHAT.match(head) or _FULL_EXPORT.match(head):
            return True
        # Files re-saved by another tool lose the key order but keep Telegram's field names.
        return bool(
            '"date_unixtime"' in head
            and '"text_entities"' in head
            and _MESSAGES_KEY.search(head)
            and _MESSAGE_TYPE.search(head)
        )
    except Exception:  # a sniffer must never stop detection
        return False


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    result = ImportResult()
    exports = [read_export(source, result) for source in sources]
    # A single-chat export may not reveal its owner; another file of the same import can.
    fallback = next((export.account for export in exports if export.account), None)
    skipped: dict[str, list[str]] = {"channel": [], "bot chat": [], "replies thread": []}
    owners: list[str] = []
    for export in exports:
        account = export.account or fallback
        if account and account.name and account.name not in owners:
            owners.append(account.name)
        for index, dialog in enumerate(export.dialogs):
            conversation = _dialog_to_conversation(export.source, index, dialog, account, result, skipped)
            if conversation is not None:
                result.conversations.append(conversation)
        result.formats[LABEL] += 1
    result.warnings.extend(f"Telegram: the exporting account is {name}" for name in owners)
    for kind, titles in skipped.items():
        if titles:
            shown = ", ".join(titles[:5]) + (", ..." if len(titles) > 5 else "")
            result.warnings.append(
                f"Telegram: skipped {len(titles)} {kind}{'s' if len(titles) != 1 else ''} "
                f"(no conversation with a person to learn from): {shown}"
            )
    return result


def _dialog_to_conversation(
    source: SourceFile,
    index: int,
    dialog: dict,
    account: Account | None,
    result: ImportResult,
    skipped: dict[str, list[str]],
) -> Conversation | None:
    kind = dialog.get("type")
    if kind is not None and not isinstance(kind, str):
        raise UserError(f"{source.name}: field `type` of chat {index} should be a string, found {json_kind(kind)}")
    title = dialog_title(dialog)
    messages = dialog_messages(dialog, source.name)
    if kind in _CHANNEL_TYPES:
        skipped["channel"].append(f"{title} ({len(messages)} post{'s' if len(messages) != 1 else ''})")
        return None
    if kind == "bot_chat":  # a conversation with a program, not a person
        skipped["bot chat"].append(title)
        result.dropped[Drop.BOT] += len(messages)
        return None
    if kind == "replies":  # replies to you from many unrelated channel threads
        skipped["replies thread"].append(title)
        result.dropped[Drop.SYSTEM] += len(messages)
        return None
    where = f"{source.name}: chat {title!r}"
    kept = _convert_messages(messages, account, where, result)
    if not kept:
        return None
    if all(message.timestamp is not None for message in kept):
        kept.sort(key=lambda message: message.timestamp)  # stable: same-second order survives
    senders = {message.sender for message in kept}
    return Conversation(
        id=f"{source.name}#{index if dialog.get('id') is None else dialog['id']}",
        title=title,
        messages=kept,
        is_group=kind in _GROUP_TYPES or len(senders) > 2,
        source_format=NAME,
    )


def _convert_messages(messages: list, account: Account | None, where: str, result: ImportResult) -> list[Message]:
    kept: list[Message] = []
    dropped = result.dropped
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise UserError(f"{where}, message {position}: should be an object, found {json_kind(message)}")
        outcome = _convert(message, account, where, position)
        if isinstance(outcome, Message):
            kept.append(outcome)
        else:
            dropped[outcome] += 1
    return kept


def _convert(message: dict, account: Account | None, where: str, position: int) -> Message | str:
    """One message -> a kept Message, or the Drop reason it is not one of the sender's own words."""
    kind = message.get("type", "message")
    if kind == "service":
        action = message.get("action")
        return Drop.CALL if isinstance(action, str) and action in _CALL_ACTIONS else Drop.SYSTEM
    if kind == "unsupported":
        return Drop.MEDIA
    if kind != "message":
        return Drop.SYSTEM
    if "forwarded_from" in message:  # someone else's words, even when the original author is null
        return Drop.SHARE
    if "via_bot" in message:
        return Drop.BOT
    text = _plain_text(message, where, position).strip()
    if not text or (text[0] == "(" and _FILE_PLACEHOLDER.fullmatch(text)):
        return _media_reason(message)
    sender = _sender(message, account, where, position)
    return Message(sender, text, _timestamp(message, where, position))


def _plain_text(message: dict, where: str, position: int) -> str:
    text = message.get("text", "")
    if not isinstance(text, (str, list)):
        raise _field_error(where, position, "text", "a string or a list", text)
    entities = message.get("text_entities")
    if entities is not None:
        if not isinstance(entities, list):
            raise _field_error(where, position, "text_entities", "a list", entities)
        text = entities  # always objects, so the simplest to join
    elif isinstance(text, str):
        return text
    try:  # one join over the whole list; a wrong-shaped part fails it as a TypeError or KeyError
        return "".join([part if part.__class__ is str else part["text"] for part in text])
    except (TypeError, KeyError):
        raise UserError(
            f"{where}, message {position}: text parts should be strings or objects with a `text` string"
        ) from None


def _media_reason(message: dict) -> str:
    if "poll" in message:
        return Drop.POLL
    if "location_information" in message or "place_name" in message:
        return Drop.LOCATION
    media_type = message.get("media_type")
    if media_type == "sticker":
        return Drop.STICKER
    if media_type is not None or any(key in message for key in _MEDIA_KEYS):
        return Drop.MEDIA
    return Drop.EMPTY


def _sender(message: dict, account: Account | None, where: str, position: int) -> str:
    name = message.get("from")
    if name is not None and name.__class__ is not str:
        raise _field_error(where, position, "from", "a string or null", name)
    if account is not None and account.name:
        from_id = message.get("from_id")
        if from_id.__class__ is not str:
            from_id = normalize_id(from_id, where, "from_id")
        if from_id == account.from_id:
            return account.name
    return (name and name.strip()) or DELETED_ACCOUNT


def _timestamp(message: dict, where: str, position: int) -> float | None:
    raw = message.get("date_unixtime")
    if raw is None:
        return _iso_timestamp(message.get("date"), where, position)
    if raw.__class__ not in (str, int, float):  # bool is not a time
        raise _field_error(where, position, "date_unixtime", "Unix seconds", raw)
    try:
        value = float(raw)
    except ValueError:
        raise _field_error(where, position, "date_unixtime", "Unix seconds", raw) from None
    if not math.isfinite(value):
        raise _field_error(where, position, "date_unixtime", "a finite number", raw)
    return value


def _iso_timestamp(raw: Any, where: str, position: int) -> float | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        raise _field_error(where, position, "date", "an ISO date", raw) from None
    # `date` is the exporting machine's local time with no offset; reading it as UTC keeps the
    # result the same on every machine, and only gaps between messages matter downstream.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _field_error(where: str, position: int, field: str, expected: str, value: Any) -> UserError:
    shown = repr(value)[:40] if isinstance(value, (str, int, float)) else json_kind(value)
    return UserError(f"{where}, message {position}: field `{field}` should be {expected}, found {shown}")
