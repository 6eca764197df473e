"""Messenger and Instagram exports built in memory for the importer's tests: DYI threads stored as
Facebook stores them (mojibake, newest first) and E2EE threads."""

from __future__ import annotations

import json

from training.data.formats import ImportOptions, messenger
from training.data.sources import SourceFile

ME, ALICE, BOB, CARL = "Sam Rivera", "Alice Dvořák", "Bob Chen", "Carl Ng"
T0 = 1_700_000_000_000  # ms
FB_ROOT = "your_facebook_activity/messages"


def mojibake(text: str) -> str:
    """How Facebook stores text: each UTF-8 byte as its own \\u00XX code point."""
    return text.encode("utf-8").decode("latin-1")


def msg(sender: str, minute: int, content: str | None = None, **fields) -> dict:
    item = {"sender_name": mojibake(sender), "timestamp_ms": T0 + minute * 60_000}
    if content is not None:
        item["content"] = mojibake(content)
    item.update(fields)
    item.setdefault("is_geoblocked_for_viewer", False)
    return item


def thread(title: str, people: list[str], messages: list[dict], **fields) -> dict:
    """A message_N.json document; messages are given oldest first and stored newest first."""
    return {
        "participants": [{"name": mojibake(p)} for p in people],
        "messages": messages[::-1],
        "title": mojibake(title),
        "is_still_participant": True,
        **fields,
    }


def e2ee(title: str, people: list[str], messages: list[dict]) -> dict:
    return {"participants": people, "threadName": title, "messages": messages}


def e2ee_msg(sender: str, minute: int, text: str, **fields) -> dict:
    return {
        "senderName": sender,
        "text": text,
        "timestamp": T0 + minute * 60_000,
        "type": "Generic",
        "isUnsent": False,
        "media": [],
        "reactions": [],
        **fields,
    }


def source(name: str, document) -> SourceFile:
    return SourceFile(name, json.dumps(document, indent=2).encode("ascii"))


def parse(*sources: SourceFile):
    return messenger.parse(list(sources), ImportOptions())


def texts(conversation) -> list[str]:
    return [m.text for m in conversation.messages]


def by_title(result) -> dict:
    return {c.title: c for c in result.conversations}
