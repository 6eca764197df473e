"""The neutral shapes every importer produces and every later stage consumes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Message:
    """One kept, human-written text message."""

    sender: str
    text: str
    timestamp: float | None = None  # seconds since the epoch; None when the source has no clock


@dataclass
class Conversation:
    """One thread (a chat with a person or group, or one record of a data set)."""

    id: str  # stable and unique across one import, e.g. the thread's path
    title: str
    messages: list[Message]  # oldest first
    is_group: bool = False
    system: str | None = None  # a data set's own system prompt, if it carries one
    source_format: str = ""


@dataclass
class Document:
    """Raw text without turns (seed 002's {"text"} lines, seed 003's files), trained as plain text."""

    id: str
    text: str
    source_format: str = ""


class Drop:
    """Why a message was not kept. Importers count every dropped event under one of these (plain
    strings, shown as they are in the Data tab's counts and the persona manifest)."""

    MEDIA = "media"
    STICKER = "sticker"
    CALL = "call"
    SHARE = "share without text"
    UNSENT = "unsent or deleted"
    SYSTEM = "system notice"
    EMPTY = "empty"
    POLL = "poll"
    LOCATION = "location"
    DUPLICATE = "duplicate"
    BOT = "bot"
    TOO_LONG = "too long"


# Bounds on one piece of text, so one pasted log in an export cannot make every later stage
# (context building, tokenizing, previews, training) cost gigabytes. Real chat messages are far
# shorter; a data set's raw-text record may be a page or two of prose.
MAX_MESSAGE_CHARS = 20_000
MAX_DOCUMENT_CHARS = 100_000


@dataclass
class ImportResult:
    conversations: list[Conversation] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # reason -> messages dropped
    formats: Counter = field(default_factory=Counter)  # format label -> files read
    warnings: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # media and other files not read

    def extend(self, other: ImportResult) -> None:
        self.conversations.extend(other.conversations)
        self.documents.extend(other.documents)
        self.dropped.update(other.dropped)
        self.formats.update(other.formats)
        self.warnings.extend(other.warnings)
        self.skipped_files.extend(other.skipped_files)

    @property
    def message_count(self) -> int:
        return sum(len(c.messages) for c in self.conversations)
