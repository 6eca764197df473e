"""The bundled Sam Rivera sample (dialogues, Messenger export, persona JSONL) and the synthetic
large-export generator. Files are checked with json directly, not through training.data.formats."""

from __future__ import annotations

import json
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bench import make_messenger_export as bench_export
from samples import build_samples, messenger_dyi
from samples.sam_dialogues import CONVERSATIONS, PEOPLE, SELF, THREADS

SAMPLES = Path(build_samples.__file__).resolve().parent
ZIP_PATH = SAMPLES / build_samples.ZIP_NAME
JSONL_PATH = SAMPLES / build_samples.JSONL_NAME
ROOT = messenger_dyi.MESSAGES_ROOT
HOUR_MS = 3_600_000
YEAR_2025_MS = (1_735_689_600_000, 1_767_225_600_000)


def fix_mojibake(text: str) -> str:
    return text.encode("latin-1").decode("utf-8")


def thread_files(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    """Thread folder path -> its message_N.json member names, message_1 first."""
    threads: dict[str, list[str]] = defaultdict(list)
    for name in sorted(archive.namelist()):
        if name.endswith(".json"):
            folder, _, file_name = name.rpartition("/")
            threads[folder].append(file_name)
    return {folder: sorted(files, key=lambda f: int(f[8:-5])) for folder, files in threads.items()}


def thread_documents(archive: zipfile.ZipFile, thread_key: str) -> list[dict]:
    thread = THREADS[thread_key]
    folder = f"{ROOT}/{thread['section']}/{thread['folder']}"
    names = thread_files(archive)[folder]
    return [json.loads(archive.read(f"{folder}/{name}")) for name in names]


def all_messages(documents: list[dict]) -> list[dict]:
    return [message for document in documents for message in document["messages"]]


def is_human_text(message: dict) -> bool:
    if "content" not in message or message["type"] != "Generic":
        return False
    text = fix_mojibake(message["content"])
    return text != messenger_dyi.CONNECTED_NOTICE and " named the group " not in text


def thread_lines(thread_key: str) -> list[tuple[str, str]]:
    return [
        (PEOPLE[speaker], text)
        for conversation in CONVERSATIONS
        if conversation["thread"] == thread_key
        for _, speaker, text in conversation["lines"]
    ]


@pytest.fixture(scope="module")
def archive():
    with zipfile.ZipFile(ZIP_PATH) as opened:
        yield opened


# ------------------------------------------------------------------ the hand-written dialogues


def test_dialogues_are_big_enough_and_mostly_friends():
    lines = [line for conversation in CONVERSATIONS for line in conversation["lines"]]
    sam_share = sum(speaker == SELF for _, speaker, _ in lines) / len(lines)
    assert 40 <= len(CONVERSATIONS) <= 50
    assert len(lines) >= 700
    assert 0.35 <= sam_share <= 0.45
    assert Counter(c["thread"] for c in CONVERSATIONS).keys() == THREADS.keys()
    text = " ".join(t for _, _, t in lines)
    for non_ascii in ["café", "jalapeño", "Zoë", "😭", "🙃", "crème brûlée"]:
        assert non_ascii in text


def test_every_speaker_belongs_to_the_thread_and_references_are_valid():
    for conversation in CONVERSATIONS:
        members = THREADS[conversation["thread"]]["members"]
        lines = conversation["lines"]
        assert {speaker for _, speaker, _ in lines} <= set(members)
        for index, reactor, _ in conversation.get("reactions", []):
            assert reactor in members and lines[index][1] != reactor  # nobody reacts to themselves
        for _, speaker, kind, _ in conversation.get("events", []):
            assert speaker in members
            assert kind in {"photo", "sticker", "missed_call", "share", "unsent", "connected", "rename"}


def test_sam_texts_in_his_own_style():
    sam_lines = [text for c in CONVERSATIONS for _, speaker, text in c["lines"] if speaker == SELF]
    for text in sam_lines:
        assert text in (text.lower(), text.upper()), f"capitalised: {text!r}"  # lower, or shouting
        assert not text.endswith("."), f"full stop: {text!r}"
    joined = "\n".join(sam_lines)
    for habit in ["lol", "ya", "ok ok", "wait", "!!", "😭", "🙃"]:
        assert habit in joined
    assert sum("?" in text for text in sam_lines) >= 20  # he asks follow-up questions
    runs = sum(1 for c in CONVERSATIONS for a, b in zip(c["lines"], c["lines"][1:]) if a[1] == b[1] == SELF)
    assert runs >= 80  # several bubbles in a row


def test_conversations_are_sessions_days_apart():
    last_day: dict[str, int] = {}
    for conversation in CONVERSATIONS:
        minutes = [line[0] for line in conversation["lines"]]
        minutes += [event[0] for event in conversation.get("events", [])]
        ordered = sorted(minutes)
        line_minutes = [line[0] for line in conversation["lines"]]
        assert line_minutes == sorted(line_minutes)
        assert all(b - a < 60 for a, b in zip(ordered, ordered[1:]))
        thread = conversation["thread"]
        assert conversation["day"] > last_day.get(thread, -1)
        last_day[thread] = conversation["day"]


# ------------------------------------------------------------------ the generated files


def test_builder_reproduces_the_checked_in_files_byte_for_byte(tmp_path):
    zip_path, jsonl_path = build_samples.build(tmp_path)
    assert zip_path.read_bytes() == ZIP_PATH.read_bytes()
    assert jsonl_path.read_bytes() == JSONL_PATH.read_bytes()


def test_zip_is_small_with_the_facebook_layout(archive):
    assert ZIP_PATH.stat().st_size < 200_000
    assert {info.date_time for info in archive.infolist()} == {build_samples.ZIP_MEMBER_TIME}
    threads = thread_files(archive)
    assert threads == {
        f"{ROOT}/inbox/{THREADS['maya']['folder']}": ["message_1.json", "message_2.json"],
        f"{ROOT}/inbox/{THREADS['jordan']['folder']}": ["message_1.json"],
        f"{ROOT}/inbox/{THREADS['mom']['folder']}": ["message_1.json"],
        f"{ROOT}/inbox/{THREADS['crew']['folder']}": ["message_1.json"],
        f"{ROOT}/archived_threads/{THREADS['theo']['folder']}": ["message_1.json"],
    }
    media = [name for name in archive.namelist() if not name.endswith(".json")]
    assert any("/photos/" in name and name.endswith(".jpg") for name in media)
    assert all(archive.read(name)[:3] == b"\xff\xd8\xff" for name in media if name.endswith(".jpg"))


def test_export_is_ascii_mojibake_that_decodes_to_the_dialogues(archive):
    raw = archive.read(f"{ROOT}/inbox/{THREADS['maya']['folder']}/message_2.json")
    assert raw.isascii() and b"caf\\u00c3\\u00a9" in raw  # "café" the way Facebook writes it
    for thread_key in THREADS:
        messages = all_messages(thread_documents(archive, thread_key))
        texts = [
            (fix_mojibake(m["sender_name"]), fix_mojibake(m["content"]))
            for m in sorted(messages, key=lambda m: m["timestamp_ms"])
            if is_human_text(m)
        ]
        assert texts == thread_lines(thread_key)


def test_export_is_newest_first_split_and_sessions_match_conversations(archive):
    for thread_key in THREADS:
        documents = thread_documents(archive, thread_key)
        stamps = [m["timestamp_ms"] for m in all_messages(documents)]
        assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
        assert all(YEAR_2025_MS[0] <= stamp < YEAR_2025_MS[1] for stamp in stamps)
        sessions = 1 + sum(a - b >= HOUR_MS for a, b in zip(stamps, stamps[1:]))
        assert sessions == sum(c["thread"] == thread_key for c in CONVERSATIONS)
        for document in documents:
            names = {fix_mojibake(p["name"]) for p in document["participants"]}
            assert names == {PEOPLE[key] for key in THREADS[thread_key]["members"]}
            assert fix_mojibake(document["title"]) == THREADS[thread_key]["title"]


def test_export_carries_realistic_non_text_events(archive):
    messages = [m for key in THREADS for m in all_messages(thread_documents(archive, key))]
    crew = thread_documents(archive, "crew")[0]
    assert crew["thread_type"] == "RegularGroup" and len(crew["participants"]) == 4
    assert thread_documents(archive, "maya")[0]["thread_type"] == "Regular"
    names = set(archive.namelist())
    photos = [p["uri"] for m in messages for p in m.get("photos", [])]
    assert photos and all(uri in names for uri in photos)
    assert [m["sticker"]["uri"] in names for m in messages if "sticker" in m] == [True, True]
    call = next(m for m in messages if m["type"] == "Call")
    assert call["missed"] is True and call["call_duration"] == 0
    share = next(m for m in messages if m["type"] == "Share")
    assert share["share"]["link"].startswith("https://") and "content" not in share
    unsent = next(m for m in messages if m.get("is_unsent"))
    assert "content" not in unsent
    contents = [fix_mojibake(m["content"]) for m in messages if "content" in m]
    assert messenger_dyi.CONNECTED_NOTICE in contents
    assert "Maya Chen named the group climbing crew 🧗." in contents
    reactions = Counter(fix_mojibake(reaction["reaction"]) for m in messages for reaction in m.get("reactions", []))
    assert reactions["❤"] >= 3 and reactions["😂"] >= 3


def test_persona_jsonl_opens_with_system_then_user_and_keeps_sams_turns():
    records = [json.loads(line) for line in JSONL_PATH.read_text("utf-8").splitlines()]
    assert len(records) == len(CONVERSATIONS)
    for record, conversation in zip(records, CONVERSATIONS):
        turns = record["messages"]
        assert turns[0] == {"role": "system", "content": build_samples.SYSTEM_PROMPT}
        assert turns[1]["role"] == "user"
        roles = [turn["role"] for turn in turns[1:]]
        assert all(a != b for a, b in zip(roles, roles[1:]))  # consecutive lines were merged
        lines = conversation["lines"]
        first_friend = next(n for n, line in enumerate(lines) if line[1] != SELF)
        sam_after = [text for _, speaker, text in lines[first_friend:] if speaker == SELF]
        assistant = [line for turn in turns if turn["role"] == "assistant" for line in turn["content"].split("\n")]
        assert assistant == sam_after
    crew_user = next(
        t["content"]
        for r, c in zip(records, CONVERSATIONS)
        if c["thread"] == "crew"
        for t in r["messages"]
        if t["role"] == "user"
    )
    assert all(line.split(": ", 1)[0] in PEOPLE.values() for line in crew_user.split("\n"))


# ------------------------------------------------------------------ the synthetic large export


def read_generated(root: Path) -> dict[str, list[dict]]:
    """Thread folder -> its documents, message_1 first."""
    threads: dict[str, list[dict]] = defaultdict(list)
    paths = sorted(root.glob(f"{ROOT}/*/*/message_*.json"), key=lambda path: (path.parent, int(path.stem[8:])))
    for path in paths:
        threads[str(path.parent.relative_to(root))].append(json.loads(path.read_bytes()))
    return threads


def test_generated_export_has_the_requested_size_and_layout(tmp_path):
    root = bench_export.generate(tmp_path / "export", messages=40_000, threads=12, seed=3)
    threads = read_generated(root)
    messages = [m for docs in threads.values() for d in docs for m in d["messages"]]
    assert len(threads) == 12 and len(messages) == 40_000
    sizes = [len(d["messages"]) for docs in threads.values() for d in docs]
    assert max(sizes) == messenger_dyi.FACEBOOK_MESSAGES_PER_FILE  # the biggest thread is split
    for docs in threads.values():
        stamps = [m["timestamp_ms"] for d in docs for m in d["messages"]]
        assert stamps == sorted(stamps, reverse=True)  # newest first, also across message_N files
    thread_types = {d["thread_type"] for docs in threads.values() for d in docs}
    assert thread_types == {"Regular", "RegularGroup"}
    events = sum("content" not in m or m["type"] != "Generic" for m in messages)
    assert 0.015 < events / len(messages) < 0.045
    texts = [fix_mojibake(m["content"]) for m in messages if m["type"] == "Generic" and "content" in m]
    assert len(set(texts)) / len(texts) > 0.8
    assert any(not text.isascii() for text in texts)
    photo = next(p["uri"] for m in messages for p in m.get("photos", []))
    assert (root / photo).read_bytes()[:3] == b"\xff\xd8\xff"


def test_generated_export_is_deterministic_and_zips(tmp_path):
    first = bench_export.generate(tmp_path / "a", messages=3_000, threads=6, seed=1)
    again = bench_export.generate(tmp_path / "b", messages=3_000, threads=6, seed=1)
    other = bench_export.generate(tmp_path / "c", messages=3_000, threads=6, seed=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert read_generated(first) != read_generated(other)
    zipped = bench_export.generate(tmp_path / "z", messages=3_000, threads=6, seed=1, as_zip=True)
    with zipfile.ZipFile(zipped) as archive:
        assert sorted(archive.namelist()) == sorted(str(f) for f in files)
        assert all(archive.read(str(f)) == (first / f).read_bytes() for f in files)


def test_generator_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        bench_export.generate(tmp_path, messages=10, threads=2)
    assert (tmp_path / "old.txt").read_text() == "keep me"
