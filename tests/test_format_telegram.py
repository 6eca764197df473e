"""Telegram Desktop result.json: both export shapes, every drop reason, and hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import load_only_user_errors, mutate
from training.conversation import Drop
from training.data.formats import ImportOptions, detect, telegram
from training.data.sources import SourceFile
from training.errors import UserError

# Enough messages to expose a slow per-message path; 400k were timed by hand (see the report).
COUNT = 100_000
FIXTURES = Path(__file__).parent / "fixtures" / "telegram"


def fixture(name: str, as_name: str | None = None) -> SourceFile:
    return SourceFile(as_name or f"ChatExport/{name}", (FIXTURES / name).read_bytes())


def parse(*sources: SourceFile):
    return telegram.parse(list(sources), ImportOptions())


def dialog(messages: list, **fields) -> SourceFile:
    root = {"name": "Pat", "type": "personal_chat", "id": 5, **fields, "messages": messages}
    return SourceFile("result.json", json.dumps(root).encode())


def message(text="hello", **fields) -> dict:
    return {
        "id": 1,
        "type": "message",
        "date_unixtime": "1700000000",
        "from": "Pat",
        "from_id": "user5",
        "text": text,
        **fields,
    }


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["personal_chat.json", "group_with_escapes.json", "old_numeric_ids.json", "full_account.json"]
)
def test_sniff_claims_every_telegram_shape_and_detection_picks_telegram(name):
    source = fixture(name)
    assert telegram.sniff(source)
    assert detect(source) is telegram


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02",
        b"[1, 2, 3]",
        b"hello there\n",
        b'{"participants": [{"name": "A"}], "messages": [{"sender_name": "A", "timestamp_ms": 1}]}',
        b'{"guild": {"id": "0"}, "channel": {"id": "1"}, "messages": []}',
        b'{"messages": [{"role": "user", "content": "hi"}]}',
    ],
)
def test_sniff_rejects_other_content(data):
    assert not telegram.sniff(SourceFile("result.json", data))


def test_sniff_looks_at_content_not_the_file_name():
    assert telegram.sniff(fixture("personal_chat.json", as_name="anything.txt"))
    assert not telegram.sniff(SourceFile("result.json", b'{"a": 1}'))


# --- single-chat export ----------------------------------------------------------------------


def test_personal_chat_keeps_only_the_senders_own_words():
    result = parse(fixture("personal_chat.json"))
    [chat] = result.conversations
    assert chat.id == "ChatExport/personal_chat.json#111"
    assert chat.title == "Alice Smith" and not chat.is_group and chat.source_format == "telegram"
    assert [(m.sender, m.text) for m in chat.messages] == [
        ("Alice Smith", "hey! are you coming tonight?"),
        ("Sam Rivers", "yes definitely, see https://example.org/party and ask @bob_k"),
        ("Sam Rivers", "the view from my window"),  # a photo's caption is kept
        ("Alice Smith", "wow, jealous"),
    ]
    assert chat.messages[0].timestamp == 1698765600.0
    assert result.formats == {"Telegram": 1}


def test_every_drop_reason_is_counted_once_per_message():
    result = parse(fixture("personal_chat.json"))
    assert dict(result.dropped) == {
        Drop.CALL: 1,
        Drop.SYSTEM: 1,
        Drop.STICKER: 1,
        Drop.MEDIA: 3,
        Drop.SHARE: 1,
        Drop.BOT: 1,
        Drop.POLL: 1,
        Drop.LOCATION: 1,
        Drop.EMPTY: 1,
    }
    kept = result.message_count
    assert kept + sum(result.dropped.values()) == 15


def test_file_not_included_placeholders_never_become_text():
    result = parse(fixture("personal_chat.json"))
    texts = " ".join(m.text for m in result.conversations[0].messages)
    assert "File not included" not in texts and "😂" not in texts


def test_owner_of_a_personal_chat_is_the_sender_who_is_not_the_peer():
    result = parse(fixture("personal_chat.json"))
    assert "Telegram: the exporting account is Sam Rivers" in result.warnings


def test_entity_list_text_is_used_when_text_entities_are_missing():
    source = dialog([message(["a ", {"type": "bold", "text": "bold"}, " ", {"type": "mention", "text": "@x"}])])
    assert parse(source).conversations[0].messages[0].text == "a bold @x"


def test_invalid_hex_escapes_are_repaired_and_literal_backslash_x_survives():
    result = parse(fixture("group_with_escapes.json"))
    [chat] = result.conversations
    texts = [m.text for m in chat.messages]
    assert texts[0] == "bell\x07 rings at the gym, saturday 10am?"
    assert texts[2] == "my notes are in C:\\xampp\\climb.txt"
    assert any("repaired" in warning for warning in result.warnings)
    assert result.dropped == {Drop.SYSTEM: 1, Drop.CALL: 1}  # group_call is a call


def test_null_from_is_a_deleted_account_and_supergroups_are_groups():
    [chat] = parse(fixture("group_with_escapes.json")).conversations
    assert chat.messages[1].sender == "Deleted Account"
    assert chat.is_group and chat.id == "ChatExport/group_with_escapes.json#1600123456"


def test_old_exports_with_numeric_from_id_and_no_unixtime_are_sorted_by_iso_date():
    result = parse(fixture("old_numeric_ids.json"))
    [chat] = result.conversations
    assert [(m.sender, m.text) for m in chat.messages] == [("Carol", "still up?"), ("Sam Rivers", "check this")]
    assert chat.messages[0].timestamp < chat.messages[1].timestamp
    assert "Telegram: the exporting account is Sam Rivers" in result.warnings


def test_owner_found_in_one_file_names_the_owner_in_the_others():
    result = parse(fixture("full_account.json"), fixture("group_with_escapes.json"))
    group = next(c for c in result.conversations if c.title == "Climbing Crew")
    assert group.messages[2].sender == "Sam Rivers"
    assert result.warnings.count("Telegram: the exporting account is Sam Rivers") == 1


# --- full-account export ---------------------------------------------------------------------


def test_full_account_export_reads_chats_and_left_chats_and_skips_channels_and_bots():
    result = parse(fixture("full_account.json"))
    titles = [c.title for c in result.conversations]
    assert titles == ["Saved Messages", "Alice Smith", "Book Club", "Old Flatmates"]
    assert all(c.id.startswith("ChatExport/full_account.json#") for c in result.conversations)
    assert len({c.id for c in result.conversations}) == 4
    channel_note = next(w for w in result.warnings if "channel" in w)
    assert "2 channels" in channel_note and "Tech News" in channel_note and "Crypto Signals" in channel_note
    assert any("bot chat" in w and "WeatherBot" in w for w in result.warnings)
    assert result.dropped[Drop.BOT] == 2 and result.dropped[Drop.SHARE] == 1


def test_full_account_owner_comes_from_personal_information_and_names_them_everywhere():
    result = parse(fixture("full_account.json"))
    assert "Telegram: the exporting account is Sam Rivers" in result.warnings
    book_club = next(c for c in result.conversations if c.title == "Book Club")
    # `from` said "Sammy" in this chat; the account's own messages carry one name.
    assert [m.sender for m in book_club.messages] == ["Eve", "Frank", "Sam Rivers"]
    assert [m.text for m in book_club.messages] == ["next book?", "something short please", "Dune, obviously"]
    assert book_club.is_group  # private_group, and three senders


def test_saved_messages_identifies_the_owner_without_personal_information():
    root = json.loads((FIXTURES / "full_account.json").read_text())
    del root["personal_information"]
    result = parse(SourceFile("export/result.json", json.dumps(root).encode()))
    saved = result.conversations[0]
    assert saved.title == "Saved Messages" and not saved.is_group
    assert "Telegram: the exporting account is Sam Rivers" in result.warnings


def test_group_detection_by_sender_count_in_a_chat_typed_personal():
    messages = [
        message("a"),
        {**message("b"), "from": "Q", "from_id": "user7"},
        {**message("c"), "from": "R", "from_id": "user8"},
    ]
    assert parse(dialog(messages)).conversations[0].is_group


def test_messages_are_sorted_by_time_and_equal_times_keep_file_order():
    messages = [
        message("late", date_unixtime="30"),
        message("first", date_unixtime="10"),
        message("second", date_unixtime="10"),
    ]
    chat = parse(dialog(messages)).conversations[0]
    assert [m.text for m in chat.messages] == ["first", "second", "late"]


def test_a_chat_with_only_dropped_messages_yields_no_conversation():
    result = parse(dialog([message(""), message("x", forwarded_from=None)]))
    assert result.conversations == [] and result.dropped == {Drop.EMPTY: 1, Drop.SHARE: 1}


# --- wrong shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, words",
    [
        (dialog("not a list"), "`messages`"),
        (dialog([message(5)]), "`text`"),
        (dialog([message("x", text_entities="oops")]), "`text_entities`"),
        (dialog([message([1, 2])]), "text parts"),
        (dialog([message("x", date_unixtime="yesterday")]), "`date_unixtime`"),
        (dialog([message("x", date_unixtime=None, date="31/10/2023")]), "`date`"),
        (dialog([message("x", **{"from": 7})]), "`from`"),
        (dialog([message("x", from_id=[1])]), "`from_id`"),
        (dialog(["just a string"]), "message 0"),
        (SourceFile("result.json", b'{"about": "x", "chats": {"list": 3}}'), "`chats.list`"),
        (SourceFile("result.json", b'{"about": "x", "chats": {"list": [1]}}'), "`chats.list[0]`"),
        (SourceFile("result.json", b'["not", "an", "object"]'), "JSON object"),
        (SourceFile("result.json", b'{"name": "A", "type": "personal_chat", "id": 1, "messages": [{'), "truncated"),
    ],
)
def test_wrong_shapes_raise_one_line_user_errors_naming_file_and_field(source, words):
    with pytest.raises(UserError) as caught:
        parse(source)
    text = str(caught.value)
    assert text.startswith("result.json") and words in text and "\n" not in text


def test_an_escaped_backslash_right_before_an_invalid_escape_keeps_both():
    raw = (
        rb'{"name": "A", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "type": "message", '
        rb'"date_unixtime": "1", "from": "A", "from_id": "user2", "text": "a\\\x07b \\x07"}]}'
    )
    [chat] = parse(SourceFile("result.json", raw)).conversations
    assert chat.messages[0].text == "a\\\x07b \\x07"


def test_repair_runs_only_when_the_strict_parse_fails():
    # A valid file whose text merely mentions \x41 keeps it exactly and gets no repair warning.
    source = dialog([message("escaped: \\x41")])
    result = parse(source)
    assert result.conversations[0].messages[0].text == "escaped: \\x41"
    assert not any("repaired" in warning for warning in result.warnings)


def test_a_large_export_parses_completely():
    one = (
        '{"id": %d, "type": "message", "date": "2023-10-31T15:23:38", "date_unixtime": "%d", '
        '"from": "%s", "from_id": "user%d", "text": "message number %d", '
        '"text_entities": [{"type": "plain", "text": "message number %d"}]}'
    )
    body = ",\n".join(one % (i, 1600000000 + i, "AB"[i % 2], i % 2, i, i) for i in range(COUNT))
    data = ('{"name": "A", "type": "personal_chat", "id": 0, "messages": [' + body + "]}").encode()
    result = parse(SourceFile("big/result.json", data))
    assert result.message_count == COUNT  # speed is measured in bench/, not asserted here


# --- hostile input through the public loader -------------------------------------------------

INSERTIONS = [b"null", b"1", b'"x"', b"[]", b"{}", b"true", b"\\x1F", b"\\", b'"', b",", b"-1e999"]
VALID = [
    (FIXTURES / name).read_bytes()
    for name in ("personal_chat.json", "group_with_escapes.json", "old_numeric_ids.json", "full_account.json")
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_user_errors(data):
    load_only_user_errors("export/result.json", data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_exports_raise_only_user_errors(original, data):
    load_only_user_errors("export/result.json", mutate(original, data, INSERTIONS))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "text",
                        "from",
                        "from_id",
                        "type",
                        "date_unixtime",
                        "date",
                        "text_entities",
                        "media_type",
                        "action",
                        "poll",
                        "photo",
                        "forwarded_from",
                        "id",
                        "name",
                    ]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_value_in_a_message_raises_only_user_errors(value):
    messages = [value] if not isinstance(value, dict) else [{**message(), **value}]
    try:
        parse(dialog(messages))
    except UserError:
        pass
