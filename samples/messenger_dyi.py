"""The shapes of a Facebook "Download your information" Messenger export, for writing one.

Shared by build_samples.py (the bundled sample) and bench/make_messenger_export.py (the large
synthetic export). Field names, key order and the encoding follow real exports as documented
in shared/reference/chat-export-formats.md section 1.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

MESSAGES_ROOT = "your_facebook_activity/messages"
STICKERS_DIR = f"{MESSAGES_ROOT}/stickers_used"
# Facebook caps the messages array of one message_N.json at about 10,000 items.
FACEBOOK_MESSAGES_PER_FILE = 10_000

CONNECTED_NOTICE = "You are now connected on Messenger"


def mojibake(text: str) -> str:
    """Text as Facebook writes it: every UTF-8 byte becomes its own code point (U+0000-U+00FF),
    which json.dumps then escapes as \\u00XX."""
    return text.encode("utf-8").decode("latin-1")


def encode_like_facebook(value: Any) -> Any:
    """Every string value in a document mojibake-encoded; keys are plain ASCII already."""
    if isinstance(value, str):
        return mojibake(value)
    if isinstance(value, dict):
        return {key: encode_like_facebook(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_like_facebook(item) for item in value]
    return value


def _message(sender: str, timestamp_ms: int, **fields: Any) -> dict:
    message = {"sender_name": sender, "timestamp_ms": timestamp_ms}
    message.update(fields)
    message.setdefault("type", "Generic")
    message["is_geoblocked_for_viewer"] = False
    return message


def text_message(sender: str, timestamp_ms: int, text: str,
                 reactions: list[tuple[str, str]] | None = None) -> dict:
    """reactions: (actor, emoji) pairs, stored on the message they react to."""
    fields: dict[str, Any] = {"content": text}
    if reactions:
        fields["reactions"] = [{"reaction": emoji, "actor": actor} for actor, emoji in reactions]
    return _message(sender, timestamp_ms, **fields)


def notice_message(sender: str, timestamp_ms: int, text: str) -> dict:
    """A sentence Messenger generates (connected, renamed the group): content, but not typed."""
    return _message(sender, timestamp_ms, content=text)


def photo_message(sender: str, timestamp_ms: int, uri: str) -> dict:
    # creation_timestamp is in seconds, unlike timestamp_ms.
    return _message(sender, timestamp_ms,
                    photos=[{"uri": uri, "creation_timestamp": timestamp_ms // 1000}])


def sticker_message(sender: str, timestamp_ms: int, uri: str) -> dict:
    return _message(sender, timestamp_ms, sticker={"uri": uri, "ai_stickers": []})


def missed_call_message(caller: str, timestamp_ms: int) -> dict:
    return _message(caller, timestamp_ms, content=f"You missed a call from {caller}.",
                    type="Call", call_duration=0, missed=True)


def share_message(sender: str, timestamp_ms: int, link: str) -> dict:
    return _message(sender, timestamp_ms, share={"link": link}, type="Share")


def unsent_message(sender: str, timestamp_ms: int) -> dict:
    return _message(sender, timestamp_ms, is_unsent=True)


def rename_notice(renamer: str, timestamp_ms: int, title: str) -> dict:
    return notice_message(renamer, timestamp_ms, f"{renamer} named the group {title}.")


def thread_documents(section: str, folder: str, title: str, participants: list[str],
                     messages_oldest_first: list[dict], is_group: bool,
                     per_file: int = FACEBOOK_MESSAGES_PER_FILE) -> Iterator[tuple[str, dict]]:
    """(path inside the export, document) for each message_N.json of one thread.

    message_1.json holds the newest messages, each file newest first, like Facebook writes them.
    """
    newest_first = messages_oldest_first[::-1]
    thread_path = f"{section}/{folder}"
    for number, start in enumerate(range(0, max(len(newest_first), 1), per_file), start=1):
        document = {
            "participants": [{"name": name} for name in participants],
            "messages": newest_first[start:start + per_file],
            "title": title,
            "is_still_participant": True,
            "thread_type": "RegularGroup" if is_group else "Regular",
            "thread_path": thread_path,
            "magic_words": [],
        }
        if is_group:
            document["joinable_mode"] = {"mode": 1, "link": ""}
        yield f"{MESSAGES_ROOT}/{thread_path}/message_{number}.json", document


def dump_document(document: dict, indent: int | None = 2) -> bytes:
    """The file bytes: pure ASCII, every non-ASCII character already a \\u00XX escape."""
    return json.dumps(document, indent=indent).encode("ascii")
