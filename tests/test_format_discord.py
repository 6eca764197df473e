"""DiscordChatExporter JSON: DMs, guild channels, partitions, --reverse, drops and hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import load_only_user_errors, mutate
from training.conversation import Drop
from training.data.formats import ImportOptions, detect, discord, load_sources
from training.data.sources import SourceFile
from training.errors import UserError

# Enough messages to expose a slow per-message path; 400k were timed by hand (see the report).
COUNT = 100_000
FIXTURES = Path(__file__).parent / "fixtures" / "discord"
DM = "Direct Messages - Private - alex_w [800000000000000001].json"
PART_1 = "Hobby Hub - Text channels - general [810000000000000001] [part 1].json"
PART_2 = "Hobby Hub - Text channels - general [810000000000000001] [part 2].json"
REVERSED = "Hobby Hub - general - weekend plans [830000000000000001].json"


def fixture(name: str) -> SourceFile:
    return SourceFile(f"discord/{name}", (FIXTURES / name).read_bytes())


def parse(*sources: SourceFile):
    return discord.parse(list(sources), ImportOptions())


def export(messages, channel_type="GuildTextChat", guild_id="1", name="export.json") -> SourceFile:
    root = {
        "guild": {"id": guild_id, "name": "G"},
        "channel": {"id": "5", "type": channel_type, "name": "c"},
        "exportedAt": "2024-01-01T00:00:00+00:00",
        "messages": messages,
        "messageCount": 0,
    }
    return SourceFile(name, json.dumps(root).encode())


def message(content="hi", mid="1", **fields) -> dict:
    return {
        "id": mid,
        "type": "Default",
        "timestamp": "2024-01-01T00:00:00+00:00",
        "content": content,
        "author": {"id": "9", "name": "pat", "nickname": "Pat", "isBot": False},
        "attachments": [],
        "embeds": [],
        "stickers": [],
        **fields,
    }


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [DM, PART_1, PART_2, REVERSED])
def test_sniff_claims_exports_and_detection_picks_discord(name):
    assert discord.sniff(fixture(name))
    assert detect(fixture(name)) is discord


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b"guild channel messages",
        b'{"name": "A", "type": "personal_chat", "id": 1, "messages": []}',
        b'{"guild": "x", "channel": "y", "messages": []}',
        b'{"participants": [], "messages": []}',
    ],
)
def test_sniff_rejects_other_content(data):
    assert not discord.sniff(SourceFile("export.json", data))


# --- direct messages -------------------------------------------------------------------------


def test_dm_keeps_text_and_reads_offsets_as_real_instants():
    result = parse(fixture(DM))
    [chat] = result.conversations
    assert chat.title == "alex_w" and not chat.is_group and chat.source_format == "discord"
    assert chat.id == f"discord/{DM}#800000000000000001"
    assert [(m.sender, m.text) for m in chat.messages] == [
        ("Alex", "you up for ranked later?"),
        ("Sam", "yeah after dinner"),
        ("Sam", "gg"),
    ]
    assert chat.messages[0].timestamp == epoch("2024-05-01T18:00:00.123+00:00")
    # "18:22Z" is 20:22 at +02:00, so the reply stays after the messages written in +02:00.
    assert chat.messages[2].timestamp == epoch("2024-05-01T18:22:00+00:00")
    assert result.formats == {"Discord (DiscordChatExporter)": 1}


def test_dm_drops_calls_attachments_and_stickers_by_type_not_text():
    result = parse(fixture(DM))
    assert dict(result.dropped) == {Drop.CALL: 1, Drop.MEDIA: 1, Drop.STICKER: 1}
    texts = [m.text for m in result.conversations[0].messages]
    assert not any("Started a call" in text for text in texts)


# --- guild channels, partitions, --reverse ---------------------------------------------------


def test_partitions_of_one_channel_merge_into_one_sorted_conversation():
    # Given in the wrong order: part 2 first.
    result = parse(fixture(PART_2), fixture(PART_1))
    [chat] = result.conversations
    assert chat.title == "Hobby Hub / general" and chat.is_group
    assert chat.id == f"discord/{PART_1}#810000000000000001"
    assert [(m.sender, m.text) for m in chat.messages] == [
        ("mo.k", "hi all, new here"),
        ("Alex", "welcome mo!"),
        ("Sam", "welcome :)"),
        ("mo.k", "thanks everyone"),
    ]
    assert dict(result.dropped) == {Drop.SYSTEM: 2, Drop.BOT: 1, Drop.MEDIA: 1}
    assert result.formats == {"Discord (DiscordChatExporter)": 2}


def test_reverse_order_export_is_sorted_oldest_first():
    result = parse(fixture(REVERSED))
    [chat] = result.conversations
    assert [m.text for m in chat.messages] == ["hike on saturday?", "I'm in"]
    assert chat.is_group  # a guild thread, even with two people talking
    assert result.dropped == {Drop.SYSTEM: 1}  # ThreadCreated


def test_all_fixture_files_together_make_one_conversation_per_channel():
    result = load_sources([fixture(name) for name in (DM, PART_1, PART_2, REVERSED)])
    assert sorted(c.title for c in result.conversations) == [
        "Hobby Hub / general",
        "Hobby Hub / weekend plans",
        "alex_w",
    ]
    assert result.formats == {"Discord (DiscordChatExporter)": 4}


def test_overlapping_exports_of_a_channel_count_repeats_as_duplicates():
    first = export([message("a", mid="1"), message("b", mid="2")], name="one.json")
    second = export([message("b", mid="2"), message("c", mid="3")], name="two.json")
    result = parse(first, second)
    assert [m.text for m in result.conversations[0].messages] == ["a", "b", "c"]
    assert result.dropped == {Drop.DUPLICATE: 1}


def test_equal_timestamps_fall_back_to_snowflake_order():
    messages = [message("second", mid="20"), message("first", mid="10")]
    assert [m.text for m in parse(export(messages)).conversations[0].messages] == ["first", "second"]


def test_an_absurdly_long_numeric_id_is_not_used_for_ordering():
    messages = [message("first", mid="1" * 5000), message("second", mid="2")]
    assert [m.text for m in parse(export(messages)).conversations[0].messages] == ["first", "second"]


@pytest.mark.parametrize(
    "channel_type, guild_id, senders, expected",
    [
        ("DirectTextChat", "0", 2, False),
        ("DirectGroupTextChat", "0", 2, True),
        ("GuildTextChat", "1", 1, True),
        (None, "0", 2, False),
        (None, "0", 3, True),
    ],
)
def test_is_group(channel_type, guild_id, senders, expected):
    messages = [
        message(str(i), mid=str(i), author={"id": str(i), "name": f"u{i}", "isBot": False}) for i in range(senders)
    ]
    source = export(messages, channel_type=channel_type, guild_id=guild_id)
    assert parse(source).conversations[0].is_group is expected


def test_sender_falls_back_to_name_without_a_nickname():
    source = export([message(author={"id": "1", "name": "raw_name", "nickname": "", "isBot": False})])
    assert parse(source).conversations[0].messages[0].sender == "raw_name"


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"author": {"id": "2", "name": "bot", "isBot": True}}, Drop.BOT),
        ({"type": "RecipientAdd"}, Drop.SYSTEM),
        ({"type": "ChannelNameChange"}, Drop.SYSTEM),
        ({"type": "GuildMemberJoin"}, Drop.SYSTEM),
        ({"type": "Call"}, Drop.CALL),
        ({"content": "", "forwardedMessage": {"content": "someone else"}}, Drop.SHARE),
        ({"content": "", "embeds": [{"title": "link"}]}, Drop.MEDIA),
        ({"content": "   "}, Drop.EMPTY),
    ],
)
def test_each_drop_reason(fields, reason):
    result = parse(export([message(**fields)]))
    assert result.conversations == [] and result.dropped == {reason: 1}


# --- wrong shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "root, words",
    [
        ({"guild": {}, "channel": {"id": "1"}, "messages": {}}, "`messages`"),
        ({"guild": [], "channel": {"id": "1"}, "messages": []}, "`guild`"),
        ({"guild": {}, "channel": {"id": 5}, "messages": []}, "`channel.id`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [3]}, "message 0"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(content=5)]}, "`content`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(author="pat")]}, "`author`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(timestamp="noon")]}, "`timestamp`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(author={"name": 7})]}, "`author.name`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(type=["Default"])]}, "`type`"),
        ({"guild": {}, "channel": {"id": "1"}, "messages": [message(stickers="x", content="")]}, "`stickers`"),
    ],
)
def test_wrong_shapes_raise_one_line_user_errors_naming_file_and_field(root, words):
    with pytest.raises(UserError) as caught:
        parse(SourceFile("export.json", json.dumps(root).encode()))
    text = str(caught.value)
    assert text.startswith("export.json") and words in text and "\n" not in text


def test_a_large_export_parses_completely():
    one = (
        '{"id": "%d", "type": "Default", "timestamp": "2024-01-01T00:%02d:%02d.123+00:00", '
        '"content": "message %d", "author": {"id": "%d", "name": "u%d", "nickname": "U%d", "isBot": false}, '
        '"attachments": [], "embeds": [], "stickers": [], "reactions": [], "mentions": []}'
    )
    body = ",".join(one % (i, (i // 60) % 60, i % 60, i, i % 2, i % 2, i % 2) for i in range(COUNT))
    data = (
        '{"guild": {"id": "1", "name": "G"}, "channel": {"id": "2", "type": "GuildTextChat", "name": "c"}, '
        '"messages": [' + body + "]}"
    ).encode()
    result = parse(SourceFile("big.json", data))
    assert result.message_count == COUNT  # speed is measured in bench/, not asserted here


# --- hostile input through the public loader -------------------------------------------------

INSERTIONS = [b"null", b"1", b'"x"', b"[]", b"{}", b"true", b'"RecipientAdd"', b'"2024-13-45"', b","]
VALID = [(FIXTURES / name).read_bytes() for name in (DM, PART_1, REVERSED)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_user_errors(data):
    load_only_user_errors("export.json", data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_exports_raise_only_user_errors(original, data):
    load_only_user_errors("export.json", mutate(original, data, INSERTIONS))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "type", "timestamp", "content", "author", "attachments", "embeds", "stickers", "forwardedMessage"]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.sampled_from(["id", "name", "nickname", "isBot"]), children, max_size=4)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_any_json_value_in_a_message_raises_only_user_errors(fields):
    try:
        parse(export([{**message(), **fields}]))
    except UserError:
        pass
