"""Facebook Messenger / Instagram DYI JSON and the E2EE export: layout, encoding, groups, bad and hostile input
(what is dropped: test_format_messenger_drops.py)."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.messenger_export import (
    ALICE,
    BOB,
    CARL,
    FB_ROOT,
    ME,
    T0,
    by_title,
    e2ee,
    e2ee_msg,
    mojibake,
    msg,
    parse,
    source,
    texts,
    thread,
)
from training.conversation import Drop
from training.data.formats import detect, load, load_sources, messenger, messenger_text
from training.data.sources import SourceFile
from training.errors import UserError

# --- layout ----------------------------------------------------------------------------------


def test_a_thread_split_over_message_2_and_message_10_is_merged_numerically_and_sorted(tmp_path):
    folder = tmp_path / "inbox" / "alice_123"
    folder.mkdir(parents=True)
    # message_2 holds the newer slice. Two messages share a millisecond: only the file order
    # (newest first, message_2 before message_10) says which came first.
    newer = [msg(ALICE, 10, "third"), msg(ME, 10, "fourth, same ms"), msg(ALICE, 11, "fifth")]
    older = [msg(ME, 1, "first"), msg(ALICE, 2, "second")]
    (folder / "message_2.json").write_text(json.dumps(thread(ALICE, [ALICE, ME], newer)))
    (folder / "message_10.json").write_text(json.dumps(thread(ALICE, [ALICE, ME], older)))

    result = load([tmp_path / "inbox"])

    [conversation] = result.conversations
    assert texts(conversation) == ["first", "second", "third", "fourth, same ms", "fifth"]
    assert conversation.id == "inbox/alice_123"
    assert conversation.title == ALICE and not conversation.is_group
    assert conversation.messages[0].timestamp == T0 / 1000 + 60
    assert result.formats[messenger.LABEL] == 2


def test_whole_export_zip_reads_every_section_merges_the_cutover_and_skips_media(tmp_path):
    alice_old = [msg(ME, 1, "hi alice"), msg(ALICE, 2, "hey sam"), msg(ALICE, 3, photos=[{"uri": "p.jpg"}])]
    alice_new = [msg(ALICE, 2, "hey sam"), msg(ME, 4, "after the cutover")]  # one message overlaps
    members = {
        f"{FB_ROOT}/inbox/alicedvorak_1/message_1.json": thread(ALICE, [ALICE, ME], alice_old),
        f"{FB_ROOT}/e2ee_cutover/alicedvorak_9/message_1.json": thread(ALICE, [ALICE, ME], alice_new),
        f"{FB_ROOT}/archived_threads/bobchen_2/message_1.json": thread(BOB, [BOB, ME], [msg(BOB, 5, "old news")]),
    }
    path = tmp_path / "facebook-sam.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, document in members.items():
            archive.writestr(name, json.dumps(document))
        archive.writestr(f"{FB_ROOT}/inbox/alicedvorak_1/photos/p.jpg", b"\xff\xd8\xff\xe0 jpeg")
        archive.writestr(f"{FB_ROOT}/inbox/alicedvorak_1/videos/v.mp4", b"\x00\x00\x00\x18ftyp")
        archive.writestr(f"{FB_ROOT}/stickers_used/s.png", b"\x89PNG\r\n")

    result = load([path])

    conversations = by_title(result)
    assert texts(conversations[ALICE]) == ["hi alice", "hey sam", "after the cutover"]
    assert conversations[ALICE].id == f"facebook-sam.zip/{FB_ROOT}/inbox/alicedvorak_1"
    assert texts(conversations[BOB]) == ["old news"]
    assert result.dropped == Counter({Drop.DUPLICATE: 1, Drop.MEDIA: 1})
    assert result.formats[messenger.LABEL] == 3
    assert sorted(Path(name).suffix for name in result.skipped_files) == [".jpg", ".mp4", ".png"]


def test_two_loose_message_1_files_of_different_people_stay_two_threads():
    first = source("message_1.json", thread(ALICE, [ALICE, ME], [msg(ALICE, 1, "from alice")]))
    second = source("message_1.json", thread(BOB, [BOB, ME], [msg(BOB, 1, "from bob")]))
    result = parse(first, second)
    assert {c.title: texts(c) for c in result.conversations} == {ALICE: ["from alice"], BOB: ["from bob"]}


# --- encoding --------------------------------------------------------------------------------


def test_mojibake_is_repaired_in_names_titles_and_text():
    messages = [msg(ALICE, 1, "café at 5? 😀"), msg(ME, 2, "řekni mi to")]
    result = parse(source(f"{FB_ROOT}/inbox/a_1/message_1.json", thread("Kavárna ☕", [ALICE, ME], messages)))
    [conversation] = result.conversations
    assert conversation.title == "Kavárna ☕"
    assert [(m.sender, m.text) for m in conversation.messages] == [(ALICE, "café at 5? 😀"), (ME, "řekni mi to")]
    raw = source("x/message_1.json", thread("t", [ALICE, ME], messages)).data
    assert b"caf\\u00c3\\u00a9" in raw  # the fixture really is encoded like Facebook's


@pytest.mark.parametrize(
    "text",
    [
        "café",  # correctly stored é: its Latin-1 byte alone is not UTF-8
        "Ã© is how mojibake looks ✓",  # a character above U+00FF: not Facebook's encoding
        "plain ascii",
        "\u00c3",  # a lone lead byte
    ],
)
def test_text_that_is_not_mojibake_is_left_alone(text):
    assert messenger_text.repair_mojibake(text) == text
    document = thread("t", [ALICE, ME], [])
    document["messages"] = [{"sender_name": ALICE, "timestamp_ms": T0, "content": text}]
    [conversation] = parse(source("a/message_1.json", document)).conversations
    assert texts(conversation) == [text]


def test_mojibake_repair_round_trips_any_text():
    for text in ["café", "řeč", "日本語", "🧗‍♀️ climbing", "naïve — “quotes”"]:
        assert messenger_text.repair_mojibake(mojibake(text)) == text


# --- E2EE and Instagram ----------------------------------------------------------------------


def test_e2ee_export_is_read_and_its_overlap_with_the_dyi_thread_dropped():
    dyi = thread(ALICE, [ALICE, ME], [msg(ALICE, 1, "before"), msg(ME, 2, "café?")])
    secure = e2ee(
        ALICE,
        [ALICE, ME],
        [
            e2ee_msg(ME, 9, "newest"),  # the export is not guaranteed oldest first
            e2ee_msg(ME, 2, mojibake("café?")),  # same message as in the DYI inbox
            e2ee_msg(ALICE, 3, "", media=[{"uri": "./media/1.jpeg"}]),
            e2ee_msg(ALICE, 4, "gone", isUnsent=True),
            e2ee_msg(ALICE, 5, "nice", reactions=[{"actor": ME, "reaction": "❤"}]),
        ],
    )
    result = parse(
        source(f"{FB_ROOT}/inbox/alice_1/message_1.json", dyi), source("secure_storage/Alice_1.json", secure)
    )

    [conversation] = result.conversations
    assert texts(conversation) == ["before", "café?", "nice", "newest"]
    assert result.dropped == Counter({Drop.DUPLICATE: 1, Drop.MEDIA: 1, Drop.UNSENT: 1})
    assert conversation.id == f"{FB_ROOT}/inbox/alice_1"


def test_e2ee_thread_on_its_own_uses_the_file_name_and_counts_people_for_groups():
    secure = e2ee("climbers", [ALICE, BOB, ME], [e2ee_msg(BOB, 1, "rope?")])
    [conversation] = parse(source("e2ee/climbers_2.json", secure)).conversations
    assert conversation.id == "e2ee/climbers_2.json"
    assert conversation.title == "climbers" and conversation.is_group


def test_instagram_thread_drops_instagrams_generated_sentences():
    name = "instagram-sam.zip/your_instagram_activity/messages/inbox/alice_17845/message_1.json"
    messages = [
        msg(ALICE, 1, "did you see my post"),
        msg(ME, 2, "Liked a message"),
        msg(ALICE, 3, "alice.dv sent an attachment."),
        msg(ALICE, 4, "alice.dv shared a story."),
        msg(ME, 5, "Reacted ❤️ to your message"),
        msg(ALICE, 6, "alice.dv started an audio call"),
        msg(ME, 7, "You missed an audio call"),
        msg(ME, 8, "yes!! so good"),
        msg(ALICE, 9, share={"link": "https://instagram.com/p/x", "share_text": "beach day"}),
    ]
    result = parse(source(name, thread("alice.dv", [ALICE, ME], messages)))
    [conversation] = result.conversations
    assert texts(conversation) == ["did you see my post", "yes!! so good"]
    assert result.dropped == Counter({Drop.SYSTEM: 6, Drop.SHARE: 1})


# --- groups and time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "people, senders, fields, expected",
    [
        ([ALICE, ME], [ALICE, ME], {"thread_type": "Regular"}, False),
        ([ALICE, ME], [ALICE, ME], {"thread_type": "RegularGroup"}, True),  # a group of two left
        ([ALICE, BOB, ME], [ALICE, ME], {}, True),
        ([ALICE, ME], [ALICE, CARL, ME], {}, True),  # Carl left: only his messages remember him
    ],
)
def test_group_detection(people, senders, fields, expected):
    messages = [msg(sender, i, f"hi from {sender}") for i, sender in enumerate(senders)]
    [conversation] = parse(source("g/message_1.json", thread("t", people, messages, **fields))).conversations
    assert conversation.is_group is expected


def test_old_exports_with_timestamp_in_seconds():
    document = thread(ALICE, [ALICE, ME], [])
    document["messages"] = [
        {"sender_name": ALICE, "timestamp": 1_500_000_060, "content": "later"},
        {"sender_name": ME, "timestamp": 1_500_000_000, "content": "earlier"},
    ]
    [conversation] = parse(source("messages/inbox/a_1/message_1.json", document)).conversations
    assert [(m.text, m.timestamp) for m in conversation.messages] == [
        ("earlier", 1_500_000_000.0),
        ("later", 1_500_000_060.0),
    ]


def test_title_falls_back_to_the_participants():
    document = thread("", [ALICE, ME], [msg(ALICE, 1, "hi")])
    del document["title"]
    [conversation] = parse(source("a/message_1.json", document)).conversations
    assert conversation.title == f"{ALICE}, {ME}"


# --- bad input -------------------------------------------------------------------------------


def test_truncated_file_is_a_user_error_naming_the_file():
    data = source("x", thread(ALICE, [ALICE, ME], [msg(ALICE, i, "hello there") for i in range(20)])).data
    cut_after_a_field = data.index(b",", len(data) // 2) + 1
    name = "export/inbox/alice_1/message_1.json"
    with pytest.raises(UserError, match=r"^export/inbox/alice_1/message_1\.json: .*truncated"):
        load_sources([SourceFile(name, data[:cut_after_a_field])])
    with pytest.raises(UserError, match=r"^export/inbox/alice_1/message_1\.json: "):
        load_sources([SourceFile(name, data[: len(data) // 2])])  # cut inside a string


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.update(messages={"a": 1}), "'messages'"),
        (lambda d: d.update(participants="Alice"), "'participants'"),
        (lambda d: d.update(title=["x"]), "'title'"),
        (lambda d: d["messages"][0].update(sender_name=["Alice"]), r"messages\[0\]\.sender_name"),
        (lambda d: d["messages"][0].update(content=42), r"messages\[0\]\.content"),
        (lambda d: d["messages"][0].update(timestamp_ms="yesterday"), r"messages\[0\]\.timestamp_ms"),
        (lambda d: d["messages"][0].pop("timestamp_ms"), r"messages\[0\] needs timestamp_ms or timestamp"),
        (lambda d: d["messages"].append("hi"), r"messages\[1\] should be an object"),
    ],
)
def test_wrong_shaped_fields_are_user_errors_naming_file_and_field(mutate, field):
    document = thread(ALICE, [ALICE, ME], [msg(ALICE, 1, "hi")])
    mutate(document)
    with pytest.raises(UserError, match=rf"^inbox/a_1/message_1\.json: .*{field}"):
        parse(source("inbox/a_1/message_1.json", document))


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, document",
    [
        ("inbox/a_1/message_1.json", thread(ALICE, [ALICE, ME], [msg(ALICE, 1, "hi")])),
        ("inbox/a_1/message_3.json", thread(ALICE, [ALICE, ME], [])),
        (
            "old/message_1.json",
            {
                "participants": [{"name": "A"}],
                "messages": [{"sender_name": "A", "timestamp": 1500000000, "content": "x"}],
            },
        ),
        ("Alice_1.json", e2ee(ALICE, [ALICE, ME], [e2ee_msg(ALICE, 1, "hi")])),
        ("renamed.json", thread(ALICE, [ALICE, ME], [msg(ALICE, 1, "hi")])),
    ],
)
def test_sniff_recognises_messenger_shapes(name, document):
    assert messenger.sniff(source(name, document))
    assert detect(source(name, document)) is messenger


def test_sniff_finds_a_resaved_file_whose_participants_come_last():
    document = thread(ALICE, [ALICE, ME], [msg(ALICE, i, "x" * 100) for i in range(1000)])
    resaved = json.dumps(document, sort_keys=True).encode()  # "messages" < "participants"
    assert resaved.index(b'"participants"') > 65536
    assert messenger.sniff(SourceFile("a/message_1.json", resaved))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\xff",
        b"hello\n",
        b"[1, 2]",
        b"null",
        b"{",
        b'{"name": "Pat", "type": "personal_chat", "messages": [{"id": 1, "date_unixtime": "1"}]}',
        b'{"guild": {"id": "0"}, "channel": {"id": "1"}, "messages": []}',
        b'{"messages": [{"role": "user", "content": "hi"}]}',
        b'{"participants": ["A", "B"], "messages": [{"sender": "A"}]}',
    ],
)
def test_sniff_rejects_other_content(data):
    assert not messenger.sniff(SourceFile("message_1.json", data))


def test_sniff_never_raises():
    assert not messenger.sniff(SourceFile("x.json", None))  # type: ignore[arg-type]


# --- hostile input ---------------------------------------------------------------------------

VALID = [
    thread(
        ALICE,
        [ALICE, ME],
        [
            msg(ALICE, 1, "café"),
            msg(ME, 2, "ok", reactions=[{"reaction": "x", "actor": ALICE}]),
            msg(ALICE, 3, share={"link": "l"}),
            msg(ME, 4, photos=[{"uri": "p"}]),
        ],
        thread_type="Regular",
    ),
    e2ee(ALICE, [ALICE, ME], [e2ee_msg(ALICE, 1, "hi"), e2ee_msg(ME, 2, "", media=[{"uri": "m"}])]),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _slots(value, found):
    """Every (container, key) in a JSON document, so a mutation can hit any field."""
    pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in pairs:
        found.append((value, key))
        _slots(item, found)
    return found


@st.composite
def hostile_files(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "truncate", "flip", "delete", "retype"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    document = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    if kind in ("delete", "retype"):
        container, key = draw(st.sampled_from(_slots(document, [])))
        if kind == "delete":
            del container[key]
        else:
            container[key] = draw(json_values)
        return json.dumps(document).encode()
    data = bytearray(json.dumps(document).encode())
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 5))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_files())
def test_hostile_files_raise_only_user_errors(data):
    try:
        result = load_sources([SourceFile("export/inbox/alice_1/message_1.json", data)])
    except UserError as error:
        assert str(error) and "\n" not in str(error)
        return
    for conversation in result.conversations:
        assert all(isinstance(m.text, str) and m.text.strip() for m in conversation.messages)
