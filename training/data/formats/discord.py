"""DiscordChatExporter JSON: one channel (or DM) per file, possibly split into `[part N]` files.

The writer is `Tyrrrz/DiscordChatExporter: DiscordChatExporter.Core/Exporting/JsonMessageWriter.cs`;
its traps (synthetic English `content` on system notices, bots, embed-only messages, partitions,
`--reverse` order) are in section 4.1 of chat-export-formats.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from training.conversation import Conversation, Drop, ImportResult, Message
from training.data.formats.base import ImportOptions
from training.data.sources import SourceFile, parse_json
from training.errors import UserError

NAME = "discord"
LABEL = "Discord (DiscordChatExporter)"

_GUILD = re.compile(r'"guild"\s*:\s*\{')
_CHANNEL = re.compile(r'"channel"\s*:\s*\{')
_MESSAGES = re.compile(r'"messages"\s*:\s*\[')

# Every other kind (RecipientAdd, ChannelPinnedMessage, GuildMemberJoin, ThreadCreated, ...) is a
# notice with synthesised English `content` ("Pinned a message."), so kinds decide, never text.
_TEXT_KINDS = {"Default", "Reply"}
_CALL_KINDS = {"Call"}
_DIRECT_CHANNEL = "DirectTextChat"
_DM_GUILD_ID = "0"  # DiscordChatExporter's stand-in guild for direct messages


def sniff(source: SourceFile) -> bool:
    try:
        head = source.head()
        return bool(
            head.lstrip().startswith("{") and _GUILD.search(head) and _CHANNEL.search(head) and _MESSAGES.search(head)
        )
    except Exception:  # a sniffer must never stop detection
        return False


@dataclass
class _Channel:
    """Every file of one channel: a partitioned or repeated export is still one conversation."""

    id: str
    first_file: str
    title: str
    one_to_one: bool
    messages: list[tuple[float, int, Message]] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    result = ImportResult()
    channels: dict[str, _Channel] = {}
    for source in sorted(sources, key=lambda s: _part_order(s.name)):
        root = _load_json(source)
        try:
            channel = _channel_of(root, source.name, channels)
            messages = _field(root, "messages", list)
        except _WrongShape as problem:
            raise UserError(f"{source.name}: {problem}") from None
        _collect(source.name, messages, channel, result)
        result.formats[LABEL] += 1
    for channel in channels.values():
        if not channel.messages:
            continue
        channel.messages.sort(key=itemgetter(0, 1))  # time, then snowflake; also undoes --reverse
        kept = [entry[2] for entry in channel.messages]
        senders = {message.sender for message in kept}
        result.conversations.append(
            Conversation(
                id=f"{channel.first_file}#{channel.id}",
                title=channel.title,
                messages=kept,
                is_group=not channel.one_to_one or len(senders) > 2,
                source_format=NAME,
            )
        )
    return result


_PART = re.compile(r"\[part (\d+)\]", re.IGNORECASE)


def _part_order(name: str) -> tuple[str, int]:
    """`x [part 10].json` after `x [part 2].json`, so a conversation's id names its first part."""
    match = _PART.search(name)
    return (_PART.sub("", name), int(match.group(1)) if match else 0)


def _load_json(source: SourceFile) -> dict:
    try:
        root = parse_json(source.text(), source.name)
    except RecursionError:
        raise UserError(f"{source.name}: JSON nested too deeply to be a DiscordChatExporter export") from None
    except UserError:
        raise
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise UserError(f"{source.name}: not valid JSON ({exc})") from None
    if not isinstance(root, dict):
        raise UserError(f"{source.name}: expected a JSON object (DiscordChatExporter export)")
    return root


class _WrongShape(Exception):
    """A field with the wrong type; the caller, who knows the file and message, reports it.

    Formatting "file: message N" for every message would cost more than reading it."""


_EXPECTED = {dict: "an object", list: "a list", str: "a string"}


def _field(container: dict, key: str, kind: type, optional: bool = False, prefix: str = "") -> Any:
    value = container.get(key)
    if value.__class__ is kind or isinstance(value, kind) or (value is None and optional):
        return value
    found = "missing" if key not in container else f"found {_kind(value)}"
    raise _WrongShape(f"field `{prefix}{key}` should be {_EXPECTED[kind]}, {found}")


def _channel_of(root: dict, name: str, channels: dict[str, _Channel]) -> _Channel:
    guild = _field(root, "guild", dict)
    info = _field(root, "channel", dict)
    channel_id = _field(info, "id", str, prefix="channel.")
    if channel_id in channels:
        return channels[channel_id]
    guild_name = _field(guild, "name", str, optional=True, prefix="guild.") or ""
    title = _field(info, "name", str, optional=True, prefix="channel.") or f"channel {channel_id}"
    kind = _field(info, "type", str, optional=True, prefix="channel.")
    if kind:  # DirectTextChat, DirectGroupTextChat, GuildTextChat, GuildPublicThread, ...
        is_dm, one_to_one = kind.startswith("Direct"), kind == _DIRECT_CHANNEL
    else:  # older exports without a channel type
        is_dm = one_to_one = _field(guild, "id", str, optional=True, prefix="guild.") == _DM_GUILD_ID
    channel = _Channel(
        id=channel_id,
        first_file=name,
        title=title if is_dm or not guild_name else f"{guild_name} / {title}",
        one_to_one=one_to_one,  # a group DM is still a group
    )
    channels[channel_id] = channel
    return channel


def _collect(name: str, messages: list, channel: _Channel, result: ImportResult) -> None:
    dropped = result.dropped
    position = 0
    try:
        for position, message in enumerate(messages):  # noqa: B007 (the except below names the position)
            if message.__class__ is not dict:
                raise _WrongShape(f"should be an object, found {_kind(message)}")
            message_id = _field(message, "id", str, optional=True)
            if message_id is not None:
                # Overlapping exports of one channel repeat messages; the snowflake id says which.
                if message_id in channel.seen_ids:
                    dropped[Drop.DUPLICATE] += 1
                    continue
                channel.seen_ids.add(message_id)
            outcome = _convert(message)
            if outcome.__class__ is str:
                dropped[outcome] += 1
                continue
            # Snowflakes are at most 20 digits; a longer "id" is no snowflake to order by.
            is_snowflake = message_id is not None and len(message_id) <= 20 and message_id.isdigit()
            snowflake = int(message_id) if is_snowflake else 0
            channel.messages.append((outcome.timestamp, snowflake, outcome))
    except _WrongShape as problem:
        raise UserError(f"{name}: message {position}: {problem}") from None


def _convert(message: dict) -> Message | str:
    """One message -> a kept Message, or the Drop reason it is not the author's own words."""
    kind = _field(message, "type", str, optional=True) or "Default"
    if kind not in _TEXT_KINDS:  # kinds newer than this reader are notices too (boosts, ...)
        return Drop.CALL if kind in _CALL_KINDS else Drop.SYSTEM
    author = _field(message, "author", dict)
    if author.get("isBot") is True:
        return Drop.BOT
    content = (_field(message, "content", str, optional=True) or "").strip()
    if not content:
        return _empty_reason(message)
    sender = _field(author, "nickname", str, optional=True, prefix="author.")
    if not sender or not sender.strip():
        sender = _field(author, "name", str, prefix="author.")
    return Message(sender.strip(), content, _timestamp(message))


def _empty_reason(message: dict) -> str:
    stickers = _field(message, "stickers", list, optional=True)
    attachments = _field(message, "attachments", list, optional=True)
    embeds = _field(message, "embeds", list, optional=True)
    if stickers:
        return Drop.STICKER
    if message.get("forwardedMessage") is not None:
        return Drop.SHARE
    if attachments or embeds:
        return Drop.MEDIA
    return Drop.EMPTY


def _timestamp(message: dict) -> float:
    raw = _field(message, "timestamp", str)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _WrongShape(f"field `timestamp` should be an ISO 8601 date, found {raw[:40]!r}") from None
    # DiscordChatExporter always writes an offset; a hand-made file without one is read as UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
