"""WhatsApp "Export chat" importer: line shapes, date order, drops, titles, groups, robustness.

Fixtures are written here with escapes so the invisible marks WhatsApp puts in (U+200E, U+202A,
U+202F, NBSP) are visible in the test source.
"""

import zipfile
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.conversation import Drop
from training.data.formats import load, load_sources, whatsapp
from training.data.formats.base import ImportOptions
from training.data.sources import SourceFile
from training.errors import UserError

LRM = "\u200e"

IOS_LINES = [
    f"{LRM}[3/18/22, 14:56:01] Elon Musk: {LRM}Messages and calls are end-to-end encrypted. "
    "No one outside of this chat, not even WhatsApp, can read or listen to them.",
    f"[3/18/22, 14:56:30] Elon Musk: {LRM}{LRM}Your security code with Elon Musk changed. Tap to learn more.",
    "[3/18/22, 14:57:00] Elon Musk: Hey, are you around?",
    "[3/18/22, 14:57:42] Me Myself: Yes! Just landed",
    f"{LRM}[3/18/22, 14:58:10] Elon Musk: {LRM}image omitted",
    f"{LRM}[3/18/22, 14:58:15] Me Myself: {LRM}sticker omitted",
    "[3/18/22, 14:59:00] Elon Musk: Two lines",
    "second line",
    f"[3/18/22, 15:00:00] Me Myself: Fixed the typo {LRM}<This message was edited>",
    f"{LRM}[3/18/22, 15:01:00] Elon Musk: {LRM}This message was deleted.",
    f"{LRM}[3/18/22, 15:02:00] Me Myself: report.pdf \u2022 {LRM}3 pages {LRM}document omitted",
    f"{LRM}[3/18/22, 15:03:00] Elon Musk: {LRM}Missed voice call, {LRM}Tap to call back",
]
IOS_CHAT = "\r\n".join(IOS_LINES) + "\r\n"

ANDROID_CHAT = """\
23/03/2022, 13:31 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.
18/03/2022, 09:15 - Dmitry S: Good morning
18/03/2022, 09:16 - Anna K: Morning! <This message was edited>
18/03/2022, 09:17 - Dmitry S: <Media omitted>
18/03/2022, 09:18 - Anna K: This message was deleted
18/03/2022, 09:19 - Dmitry S: You deleted this message
18/03/2022, 09:20 - Dmitry S: null
18/03/2022, 09:21 - Anna K: See you at 10
"""


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def read(text: str, name: str = "WhatsApp Chat with Dmitry S.txt"):
    return whatsapp.parse([SourceFile(name, text.encode("utf-8"))], ImportOptions())


def turns(result) -> list[tuple[str, str]]:
    (conversation,) = result.conversations
    return [(m.sender, m.text) for m in conversation.messages]


def first_time(text: str) -> datetime:
    message = read(text).conversations[0].messages[0]
    return datetime.fromtimestamp(message.timestamp, UTC).replace(tzinfo=None)


def test_ios_export_keeps_human_text_and_drops_marked_lines():
    result = read(IOS_CHAT, "WhatsApp Chat - Elon Musk.zip/_chat.txt")
    assert turns(result) == [
        ("Elon Musk", "Hey, are you around?"),
        ("Me Myself", "Yes! Just landed"),
        ("Elon Musk", "Two lines\nsecond line"),
        ("Me Myself", "Fixed the typo"),
    ]
    conversation = result.conversations[0]
    assert conversation.title == "Elon Musk" and not conversation.is_group
    assert conversation.id == "WhatsApp Chat - Elon Musk.zip/_chat.txt"
    assert conversation.messages[0].timestamp == utc(2022, 3, 18, 14, 57, 0)
    assert conversation.messages[1].timestamp == utc(2022, 3, 18, 14, 57, 42)
    assert result.dropped == Counter({Drop.SYSTEM: 2, Drop.MEDIA: 2, Drop.STICKER: 1, Drop.UNSENT: 1, Drop.CALL: 1})
    assert result.formats == Counter({"WhatsApp": 1})


def test_ios_title_falls_back_to_the_chat_name_on_its_notices():
    result = read(IOS_CHAT, "exports/_chat.txt")
    assert result.conversations[0].title == "Elon Musk"


def test_android_export_drops_system_media_deleted_and_strips_edit_marker():
    result = read(ANDROID_CHAT)
    assert turns(result) == [
        ("Dmitry S", "Good morning"),
        ("Anna K", "Morning!"),
        ("Anna K", "See you at 10"),
    ]
    conversation = result.conversations[0]
    assert conversation.title == "Dmitry S" and not conversation.is_group
    assert [m.timestamp for m in conversation.messages] == [
        utc(2022, 3, 18, 9, 15),
        utc(2022, 3, 18, 9, 16),
        utc(2022, 3, 18, 9, 21),
    ]
    assert result.dropped == Counter({Drop.SYSTEM: 1, Drop.MEDIA: 2, Drop.UNSENT: 2})


@pytest.mark.parametrize(
    "line, expected",
    [
        ("3/6/18, 1:55\u202fPM - a: m", datetime(2018, 3, 6, 13, 55)),
        ("3/6/18, 12:05\u202fAM - a: m", datetime(2018, 3, 6, 0, 5)),
        ("3/6/18, 12:05 PM - a: m", datetime(2018, 3, 6, 12, 5)),
        ("3/6/18, 1:55 p.m. - a: m", datetime(2018, 3, 6, 13, 55)),
        ("[3/6/18 1:55:00 p.\u00a0m.] a: m", datetime(2018, 3, 6, 13, 55)),
        ("3/6/2018 1:55 p.\u00a0m. - a: m", datetime(2018, 3, 6, 13, 55)),
        ("03-06-2018, 01.55 PM - a: m", datetime(2018, 3, 6, 13, 55)),
        ("13.06.18 21.25.15: a: m", datetime(2018, 6, 13, 21, 25, 15)),
        ("[06.13.18 21:25:15] a: m", datetime(2018, 6, 13, 21, 25, 15)),
        ("13.6.2018 klo 21.25.15 - a: m", datetime(2018, 6, 13, 21, 25, 15)),
        ("13. 6. 2018. 21:25:15 a: m", datetime(2018, 6, 13, 21, 25, 15)),
        ("[2018/06/13, 21:25:15] a: m", datetime(2018, 6, 13, 21, 25, 15)),
    ],
)
def test_every_supported_line_shape_reads_sender_text_and_time(line, expected):
    assert whatsapp.sniff(SourceFile("notes.txt", line.encode()))
    assert turns(read(line)) == [("a", "m")]
    assert first_time(line) == expected


@pytest.mark.parametrize(
    "dates, expected_first, expected_last",
    [
        # a first number above 12: days come first
        (["13/01/2022", "01/02/2022"], datetime(2022, 1, 13), datetime(2022, 2, 1)),
        # a second number above 12: months come first
        (["01/13/2022", "02/01/2022"], datetime(2022, 1, 13), datetime(2022, 2, 1)),
        # all at most 12: the first number falls back when the second moves on, so it is the day
        (["01/02/2022", "02/02/2022", "05/02/2022", "01/03/2022"], datetime(2022, 2, 1), datetime(2022, 3, 1)),
        # ... and here the second number is the day
        (["02/01/2022", "02/02/2022", "02/05/2022", "03/01/2022"], datetime(2022, 2, 1), datetime(2022, 3, 1)),
    ],
)
def test_day_and_month_order_is_inferred_per_file(dates, expected_first, expected_last):
    text = "".join(f"{day}, 10:00 - Ann: message {n}\n" for n, day in enumerate(dates))
    messages = read(text).conversations[0].messages
    stamps = [datetime.fromtimestamp(m.timestamp, UTC).replace(tzinfo=None) for m in messages]
    assert (stamps[0], stamps[-1]) == (expected_first.replace(hour=10), expected_last.replace(hour=10))
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    "dates",
    [
        ["12/01/2022", "01/02/2022"],  # each number moves once; only the first falls back: the day
        ["01/02/2022", "02/02/2022", "03/02/2022"],  # nothing falls; the first moves more: the day
    ],
)
def test_day_first_evidence_beats_the_12_hour_month_first_default(dates):
    text = "".join(f"{day}, 10:00 AM - Ann: message {n}\n" for n, day in enumerate(dates))
    messages = read(text).conversations[0].messages
    opening = next(m for m in messages if m.text == "message 0")
    assert datetime.fromtimestamp(opening.timestamp, UTC).month == int(dates[0][3:5])


def test_a_stray_date_line_inside_a_message_does_not_flip_the_order():
    text = (
        "13/03/2022, 10:00 - Ann: pasted from the calendar:\n"
        "2022/03/18, 10:00 - Dentist: bring card\n"
        "03/13/2022, 11:00 - Dentist: confirm\n"
        "14/03/2022, 10:00 - Bob: ok\n"
    )
    result = read(text)
    assert turns(result) == [
        (
            "Ann",
            "pasted from the calendar:\n2022/03/18, 10:00 - Dentist: bring card\n03/13/2022, 11:00 - Dentist: confirm",
        ),
        ("Bob", "ok"),
    ]
    assert first_time(text) == datetime(2022, 3, 13, 10, 0)
    assert any("2 line(s) start like a message" in warning for warning in result.warnings)


def test_a_file_with_one_undecidable_date_follows_its_clock_convention():
    assert first_time("05/06/2022, 10:00 - a: m\n") == datetime(2022, 6, 5, 10, 0)  # 24 h: day first
    assert first_time("5/6/22, 10:00 AM - a: m\n") == datetime(2022, 5, 6, 10, 0)  # US 12 h: month first


def test_continuation_lines_join_even_when_they_hold_dates():
    text = (
        "18/03/2022, 09:15 - Anna: Shopping list:\n"
        "eggs\n"
        "meet on 19/03/2022, 10:00 - at the shop\n"
        "12.05.2020 10:00 dentist: bring card\n"
        "\n"
        "18/03/2022, 09:16 - Bob: ok\n"
    )
    assert turns(read(text)) == [
        ("Anna", "Shopping list:\neggs\nmeet on 19/03/2022, 10:00 - at the shop\n12.05.2020 10:00 dentist: bring card"),
        ("Bob", "ok"),
    ]


def test_a_giant_pasted_message_is_dropped_and_counted_not_carried_on():
    # One message of 40,000 continuation lines (a pasted log): every later stage would copy and
    # tokenize it. It is left out at import, whatever the format, and the import says so.
    pasted = "\n".join(f"log line {n}" for n in range(40_000))
    text = f"18/03/2022, 09:15 - Anna: hi\n18/03/2022, 09:16 - Bob: {pasted}\n18/03/2022, 09:17 - Anna: you there?\n"
    result = load_sources([SourceFile("chat.txt", text.encode())])
    assert turns(result) == [("Anna", "hi"), ("Anna", "you there?")]
    assert result.dropped[Drop.TOO_LONG] == 1
    assert any("1 messages longer than 20,000 characters" in warning for warning in result.warnings)


def test_messages_are_stably_sorted_by_time():
    text = (
        "18/03/2022, 09:20 - Ann: third\n"
        "18/03/2022, 09:15 - Bob: first\n"
        "18/03/2022, 09:15 - Ann: second (same minute, later in the file)\n"
    )
    assert [t for _, t in turns(read(text))] == ["first", "second (same minute, later in the file)", "third"]


def test_group_chat_cleans_tilde_and_phone_senders():
    text = (
        '11/01/2023, 16:12 - Dmitry S created group "Hiking: 2023"\n'
        "11/01/2023, 16:12 - Dmitry S added you\n"
        "11/01/2023, 16:11 - Messages and calls are end-to-end encrypted. Tap to learn more.\n"
        "11/01/2023, 16:13 - ~\u202fAnna: Hi all\n"
        "11/01/2023, 16:14 - \u202a+49\u00a0170 1234567\u202c: Who is this?\n"
        "11/01/2023, 16:15 - Dmitry S: Welcome\n"
        "11/01/2023, 16:16 - \u202a+49\u00a0170 1234567\u202c joined using this group's invite link\n"
    )
    result = read(text, "WhatsApp Chat with Hiking Club.txt")
    assert turns(result) == [("Anna", "Hi all"), ("+49 170 1234567", "Who is this?"), ("Dmitry S", "Welcome")]
    conversation = result.conversations[0]
    assert conversation.is_group and conversation.title == "Hiking Club"
    assert result.dropped == Counter({Drop.SYSTEM: 4})


def test_a_two_person_group_is_a_group_because_of_its_notices():
    text = (
        f'[1/11/23, 16:12:00] Hiking Club: {LRM}Dmitry S created group "Hiking Club"\r\n'
        f"[1/11/23, 16:12:05] Hiking Club: {LRM}Dmitry S added you\r\n"
        "[1/11/23, 16:13:00] Dmitry S: Welcome\r\n"
        "[1/11/23, 16:14:00] Me: Thanks\r\n"
    )
    conversation = read(text, "Takeout/_chat.txt").conversations[0]
    assert conversation.is_group and conversation.title == "Hiking Club"


def test_three_senders_make_a_group_and_title_lists_them():
    text = "".join(f"01/02/2023, 10:0{n} - {name}: hi\n" for n, name in enumerate(["Ann", "Bob", "Cy"]))
    conversation = read(text, "chat.txt").conversations[0]
    assert conversation.is_group and conversation.title == "Ann, Bob, Cy"


def test_every_drop_reason_is_counted():
    bodies = [
        "<Media omitted>",
        "image omitted",
        "video omitted",
        "audio omitted",
        "GIF omitted",
        "Contact card omitted",
        f"report.pdf \u2022 {LRM}3 pages {LRM}document omitted",
        "<attached: 00000001-PHOTO-2022-03-27-21-41-55.jpg>",
        "IMG-20220327-WA0001.jpg (file attached)",
        "null",
        "sticker omitted",
        "STK-20220327-WA0002.webp (file attached)",
        "This message was deleted",
        "This message was deleted.",
        "You deleted this message",
        "You deleted this message.",
        "Waiting for this message",
        "Missed voice call",
        "Missed video call",
        "Voice call",
        "Video call",
        "POLL:\nWhere to?\nOPTION: Lake (2 votes)\nOPTION: Hills (0 votes)",
        "location: https://maps.google.com/?q=52.5,13.4",
        LRM,
        "IMG-20220327-WA0003.jpg (file attached)\nLook at this view!",
        "Plain words",
    ]
    text = "".join(f"01/02/2023, 10:{n:02d} - Ann: {body}\n" for n, body in enumerate(bodies))
    text += "01/02/2023, 11:00 - Ann changed this group's icon\n"
    result = read(text)
    assert turns(result) == [("Ann", "Look at this view!"), ("Ann", "Plain words")]
    assert result.dropped == Counter(
        {
            Drop.MEDIA: 10,
            Drop.STICKER: 2,
            Drop.UNSENT: 5,
            Drop.CALL: 4,
            Drop.POLL: 1,
            Drop.LOCATION: 1,
            Drop.EMPTY: 1,
            Drop.SYSTEM: 1,
        }
    )


def test_zipped_ios_export_is_titled_from_the_zip_name(tmp_path):
    archive = tmp_path / "WhatsApp Chat - Alice.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("_chat.txt", IOS_CHAT.replace("Elon Musk", "Alice"))
        zipped.writestr("00000001-PHOTO-2022-03-18-14-58-10.jpg", b"\xff\xd8\xff")
    result = load([archive])
    (conversation,) = result.conversations
    assert conversation.id == "WhatsApp Chat - Alice.zip/_chat.txt"
    assert conversation.title == "Alice" and conversation.source_format == "whatsapp"
    assert result.formats == Counter({"WhatsApp": 1})
    assert result.skipped_files == ["WhatsApp Chat - Alice.zip/00000001-PHOTO-2022-03-18-14-58-10.jpg"]


@pytest.mark.parametrize(
    "data",
    [
        IOS_CHAT.encode(),
        ANDROID_CHAT.encode(),
        ("\ufeff" + ANDROID_CHAT).encode(),
        b"\n\n" + ANDROID_CHAT.encode(),
        b"[2018/06/13, 21:25:15] a: m",
    ],
)
def test_sniff_accepts_exports_under_any_name(data):
    assert whatsapp.sniff(SourceFile("anything.log", data))


@pytest.mark.parametrize(
    "data",
    [
        b"Dear diary,\nToday, 12/05/2020, 10:00, it rained - a lot: really.\n",
        b"2023-01-05 10:00:00 - INFO: server started\n2023-01-05 10:00:01 - INFO: ready\n",
        b"12/05/2020 10:00 meeting with the bank\n",
        b"12/05/2020\n",
        b"date,time,text\n12/05/2020,10:00,hi\n",
        b'{"messages": [{"text": "12/05/2020, 10:00 - a: b"}]}',
        b"99/99/2020, 10:00 - a: b\n",
        b"",
        b"\x00\x01[3/18/22, 14:56:01] a: b",
    ],
)
def test_sniff_rejects_prose_logs_and_other_files(data):
    assert not whatsapp.sniff(SourceFile("WhatsApp Chat with X.txt", data))


def test_a_file_with_no_readable_message_line_is_a_user_error():
    # Sniffs (30 and 02 fit some order) but the day-first reading makes it 30 February.
    source = SourceFile("WhatsApp Chat with Bob.txt", b"30/02/2022, 10:00 - Bob: hi\n")
    assert whatsapp.sniff(source)
    with pytest.raises(UserError, match=r"^WhatsApp Chat with Bob\.txt: no WhatsApp message lines"):
        whatsapp.parse([source], ImportOptions())


def test_invalid_utf8_is_a_user_error_naming_the_file():
    source = SourceFile("chat/_chat.txt", b"[3/18/22, 14:56:01] a: caf\xe9\n")
    with pytest.raises(UserError, match=r"^chat/_chat\.txt: not UTF-8"):
        whatsapp.parse([source], ImportOptions())


def test_a_long_chat_with_continuation_lines_parses_completely():
    lines = []
    for n in range(40_000):
        day, minute = 1 + n // 1440 % 28, n % 1440
        lines.append(f"{day:02d}/03/2022, {minute // 60:02d}:{minute % 60:02d} - {'AB'[n % 2]}: message {n}")
        if n % 10 == 0:
            lines.append("a continuation line")
    source = SourceFile("WhatsApp Chat with B.txt", "\n".join(lines).encode())
    result = whatsapp.parse([source], ImportOptions())
    assert result.message_count == 40_000  # speed is measured in bench/, not asserted here
    assert result.conversations[0].messages[10].text == "message 10\na continuation line"


# --- robustness: nothing but UserError may escape, and what comes out is well formed -----------
HEADER = st.builds(
    "{}/{}/{}, {}:{:02d}{} - ".format,
    st.integers(0, 40),
    st.integers(0, 40),
    st.sampled_from([0, 22, 99, 2022, 9999]),
    st.integers(0, 30),
    st.integers(0, 70),
    st.sampled_from(["", " PM", "\u202fam"]),
)
LINE = st.one_of(
    st.sampled_from(ANDROID_CHAT.splitlines() + IOS_LINES),
    st.tuples(HEADER, st.text(max_size=30)).map("".join),
    st.text(max_size=40),
)


def check_load(name: str, data: bytes) -> None:
    try:
        result = load_sources([SourceFile(name, data)])
    except UserError as error:
        assert str(error) and "\n" not in str(error)
        return
    for conversation in result.conversations:
        stamps = [m.timestamp for m in conversation.messages]
        assert stamps == sorted(stamps)
        assert all(m.sender and m.text for m in conversation.messages)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_user_error(text):
    check_load("random.txt", text.encode("utf-8"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=25), st.sampled_from(["\n", "\r\n"]))
def test_shuffled_export_lines_only_raise_user_error(lines, newline):
    check_load("WhatsApp Chat with Fuzz.txt", newline.join(lines).encode("utf-8"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([IOS_CHAT, ANDROID_CHAT]).map(str.encode), st.data())
def test_byte_mutated_exports_only_raise_user_error(data, draw):
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 8))):
        position = draw.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = draw.draw(st.integers(0, 255))
    assert isinstance(whatsapp.sniff(SourceFile("x.txt", bytes(mutated))), bool)
    check_load("_chat.txt", bytes(mutated))
