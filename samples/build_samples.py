"""Writes the bundled sample files from the hand-written dialogues in sam_dialogues.py.

    python samples/build_samples.py [OUT_DIR]      (default: this folder)

Outputs, byte for byte the same on every run:
  sam_messenger_export.zip  a Facebook "Download your information" Messenger export of Sam's chats
  sam_persona.jsonl         the same chats as OpenAI {"messages": [...]} lines, Sam as assistant
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `samples` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from samples import messenger_dyi as dyi  # noqa: E402
from samples.sam_dialogues import BASE_DATE, CONVERSATIONS, PEOPLE, SELF, THREADS  # noqa: E402

SAMPLES_DIR = Path(__file__).resolve().parent
ZIP_NAME = "sam_messenger_export.zip"
JSONL_NAME = "sam_persona.jsonl"
SYSTEM_PROMPT = "You are Sam Rivera. Reply the way Sam texts."
# Small enough that only Maya's long thread is split into message_1.json and message_2.json.
SAMPLE_MESSAGES_PER_FILE = 250
# Fixed member times keep the zip byte-identical between runs (zipfile would use the clock).
ZIP_MEMBER_TIME = (2025, 7, 14, 9, 30, 0)
# Bubbles sent within one minute are spaced this far apart, so their order survives sorting.
BUBBLE_SPACING_MS = 4_000

# Placeholder media, 8x8 JPEG and 1x1 PNG made once with Pillow and frozen here, because a
# re-encode by another Pillow version could change bytes the reproducibility test compares.
PLACEHOLDER_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4"
    "UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol"
    "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAA"
    "AAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLR"
    "ChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaX"
    "mJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEA"
    "PwDVooorlOk//9k="
)
PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4f4LhPwAHWALHp8n2gg"
    "AAAABJRU5ErkJggg=="
)


def conversation_start_ms(conversation: dict) -> int:
    hour, minute = (int(part) for part in conversation["at"].split(":"))
    start = BASE_DATE + dt.timedelta(days=conversation["day"], hours=hour, minutes=minute)
    return int(start.timestamp()) * 1000


def timed_items(conversation: dict) -> list[tuple[int, str, int, tuple]]:
    """(timestamp_ms, "event" | "line", index in its list, item), oldest first.

    An event sorts before the text lines of its minute; the messages of one minute are spaced
    BUBBLE_SPACING_MS apart."""
    start_ms = conversation_start_ms(conversation)
    events = conversation.get("events", [])
    items = [(event[0], 0, n, "event", event) for n, event in enumerate(events)]
    items += [(line[0], 1, n, "line", line) for n, line in enumerate(conversation["lines"])]
    items.sort()
    timed, minute_seen, in_minute = [], None, 0
    for minute, _, index, kind, item in items:
        in_minute = in_minute + 1 if minute == minute_seen else 0
        minute_seen = minute
        if (in_minute + 1) * BUBBLE_SPACING_MS > 60_000:
            raise ValueError(f"day {conversation['day']}: too many messages in minute {minute}")
        timestamp_ms = start_ms + minute * 60_000 + in_minute * BUBBLE_SPACING_MS
        timed.append((timestamp_ms, kind, index, item))
    return timed


def media_name(thread_key: str, detail: str, suffix: str) -> str:
    """A Facebook-looking media file name (digits and _n) derived from what the media shows."""
    digest = int(hashlib.sha256(f"{thread_key}/{detail}".encode()).hexdigest()[:30], 16)
    return f"{digest % 10**15}_{digest // 10**15 % 10**16}_n{suffix}"


def event_message(thread_key: str, timestamp_ms: int, event: tuple,
                  media: dict[str, bytes]) -> dict:
    """The Messenger message for one non-text event; media files it refers to go into `media`."""
    _, speaker, kind, detail = event
    sender = PEOPLE[speaker]
    thread = THREADS[thread_key]
    if kind == "photo":
        uri = f"{dyi.MESSAGES_ROOT}/{thread['section']}/{thread['folder']}/photos/"
        uri += media_name(thread_key, detail, ".jpg")
        media[uri] = PLACEHOLDER_JPEG
        return dyi.photo_message(sender, timestamp_ms, uri)
    if kind == "sticker":
        uri = f"{dyi.STICKERS_DIR}/{media_name(thread_key, detail, '.png')}"
        media[uri] = PLACEHOLDER_PNG
        return dyi.sticker_message(sender, timestamp_ms, uri)
    if kind == "missed_call":
        return dyi.missed_call_message(sender, timestamp_ms)
    if kind == "share":
        return dyi.share_message(sender, timestamp_ms, detail)
    if kind == "unsent":
        return dyi.unsent_message(sender, timestamp_ms)
    if kind == "connected":
        return dyi.notice_message(sender, timestamp_ms, dyi.CONNECTED_NOTICE)
    if kind == "rename":
        return dyi.rename_notice(sender, timestamp_ms, detail)
    raise ValueError(f"unknown event kind {kind!r}")


def thread_messages(thread_key: str, media: dict[str, bytes]) -> list[dict]:
    """All Messenger messages of one thread, oldest first."""
    messages = []
    for conversation in CONVERSATIONS:
        if conversation["thread"] != thread_key:
            continue
        reactions: dict[int, list[tuple[str, str]]] = {}
        for index, reactor, emoji in conversation.get("reactions", []):
            reactions.setdefault(index, []).append((PEOPLE[reactor], emoji))
        for timestamp_ms, kind, index, item in timed_items(conversation):
            if kind == "event":
                messages.append(event_message(thread_key, timestamp_ms, item, media))
                continue
            messages.append(dyi.text_message(PEOPLE[item[1]], timestamp_ms, item[2],
                                             reactions.get(index)))
    return messages


def export_members() -> dict[str, bytes]:
    """Path inside the zip -> bytes, for every thread file and media file of the export."""
    members: dict[str, bytes] = {}
    media: dict[str, bytes] = {}
    for thread_key, thread in THREADS.items():
        # Facebook lists the other people first and the account owner last.
        others = [PEOPLE[key] for key in thread["members"] if key != SELF]
        documents = dyi.thread_documents(
            thread["section"], thread["folder"], thread["title"], others + [PEOPLE[SELF]],
            thread_messages(thread_key, media), is_group=len(thread["members"]) > 2,
            per_file=SAMPLE_MESSAGES_PER_FILE)
        for path, document in documents:
            members[path] = dyi.dump_document(dyi.encode_like_facebook(document))
    members.update(media)
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_MEMBER_TIME)
            info.create_system = 3  # unix, whatever machine builds it
            info.external_attr = 0o644 << 16
            # Stored, not deflated: deflate output can differ between zlib builds, and the test
            # compares bytes. The whole export is small either way.
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, members[name])


def persona_record(conversation: dict) -> dict | None:
    """One OpenAI chat example: Sam is the assistant; consecutive lines of one role are merged.

    Leading lines by Sam are dropped, because an example has to open with the user; None when
    nothing is left to learn from."""
    is_group = len(THREADS[conversation["thread"]]["members"]) > 2
    turns: list[dict] = []
    for _, speaker, text in conversation["lines"]:
        role = "assistant" if speaker == SELF else "user"
        if not turns and role == "assistant":
            continue
        if is_group and role == "user":
            text = f"{PEOPLE[speaker]}: {text}"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + text
        else:
            turns.append({"role": role, "content": text})
    if not any(turn["role"] == "assistant" for turn in turns):
        return None
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}] + turns}


def persona_jsonl() -> bytes:
    records = (persona_record(conversation) for conversation in CONVERSATIONS)
    lines = [json.dumps(record, ensure_ascii=False) for record in records if record is not None]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build(out_dir: Path = SAMPLES_DIR) -> tuple[Path, Path]:
    """Write both sample files into out_dir; returns (zip path, jsonl path)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path, jsonl_path = out_dir / ZIP_NAME, out_dir / JSONL_NAME
    write_zip(zip_path, export_members())
    jsonl_path.write_bytes(persona_jsonl())
    return zip_path, jsonl_path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else SAMPLES_DIR
    for path in build(out_dir):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
