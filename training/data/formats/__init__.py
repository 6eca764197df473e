"""Every supported source into one Conversation shape; the reader is chosen from content."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

from training.cancel import check_cancelled
from training.conversation import MAX_DOCUMENT_CHARS, MAX_MESSAGE_CHARS, Drop, ImportResult
from training.data.formats import (
    dataset_files,
    discord,
    messenger,
    telegram,
    text,
    whatsapp,
)
from training.data.formats.base import FormatReader, ImportOptions
from training.data.sources import SourceFile, read_inputs
from training.errors import UserError

# Most specific first: text is the fallback for any readable prose or code file.
READERS: list[FormatReader] = [messenger, telegram, discord, dataset_files, whatsapp, text]

__all__ = ["READERS", "ImportOptions", "detect", "detect_file", "load", "load_sources"]


def detect(source: SourceFile) -> FormatReader | None:
    for reader in READERS:
        if reader.sniff(source):
            return reader
    return None


def detect_file(path: str | os.PathLike) -> str:
    """The format of one file (or of the files inside a folder or zip), for `training detect`."""
    sources = read_inputs([path])
    labels = sorted({_require(source).LABEL for source in sources})
    return ", ".join(labels)


def _require(source: SourceFile) -> FormatReader:
    reader = detect(source)
    if reader is None:
        raise UserError(f"{source.name}: {_unknown_reason(source)}")
    return reader


def _unknown_reason(source: SourceFile) -> str:
    head = source.head(2048).lstrip()
    if not head:
        return "the file is empty; expected a chat export or data set"
    if source.looks_binary():
        return "looks like a binary file, not a chat export or data set"
    source.text()  # raises the precise "not UTF-8 (bad byte at offset N)" when that is the problem
    problem = _json_problem(source)
    if problem:
        return problem
    if head[:1] in "{[":
        return (
            "JSON in a shape talklike does not know; expected a Messenger/Instagram message_N.json, "
            "Telegram result.json, DiscordChatExporter JSON, or JSONL with messages, conversations, "
            "instruction/output, prompt/completion or text fields"
        )
    return "unknown format; expected a chat export (Messenger, WhatsApp, Telegram, Discord) or a data set"


def _json_problem(source: SourceFile) -> str | None:
    """Why a JSON-looking file does not parse (truncated, line N broken), else None."""
    if source.head(2048).lstrip()[:1] not in ("{", "["):
        return None
    return dataset_files.json_problem(source)


def load_sources(sources: list[SourceFile], options: ImportOptions | None = None) -> ImportResult:
    options = options or ImportOptions()
    claimed: dict[str, list[SourceFile]] = defaultdict(list)
    by_name = {reader.NAME: reader for reader in READERS}
    unrecognised: list[str] = []
    for source in sources:
        check_cancelled()
        reader = detect(source)
        if reader is not None:
            claimed[reader.NAME].append(source)
        elif source.in_container and _json_problem(source) is None:
            # Whole exports carry files that are not chats (profile, ads, settings); a broken
            # JSON file is still reported, since it may be a chat cut short.
            unrecognised.append(source.name)
        else:
            raise UserError(f"{source.name}: {_unknown_reason(source)}")
    result = ImportResult()
    for name, group in claimed.items():
        check_cancelled()
        result.extend(by_name[name].parse(group, options))
    _drop_overlong(result)
    if unrecognised:
        result.skipped_files.extend(unrecognised)
        shown = ", ".join(unrecognised[:3]) + (", ..." if len(unrecognised) > 3 else "")
        result.warnings.append(f"{len(unrecognised)} files are not chats or data sets and were skipped: {shown}")
    if not result.conversations and not result.documents:
        raise UserError(f"{_names(sources)}: {_nothing_found(sources, result)}")
    return result


def _drop_overlong(result: ImportResult) -> None:
    """Messages and raw-text records past the length bounds are dropped (and counted), whatever the format."""
    dropped = 0
    for conversation in result.conversations:
        kept = [message for message in conversation.messages if len(message.text) <= MAX_MESSAGE_CHARS]
        dropped += len(conversation.messages) - len(kept)
        conversation.messages = kept
    documents = [document for document in result.documents if len(document.text) <= MAX_DOCUMENT_CHARS]
    dropped += len(result.documents) - len(documents)
    if not dropped:
        return
    result.conversations = [conversation for conversation in result.conversations if conversation.messages]
    result.documents = documents
    result.dropped[Drop.TOO_LONG] += dropped
    result.warnings.append(
        f"{dropped:,} messages longer than {MAX_MESSAGE_CHARS:,} characters (or raw-text records longer than "
        f"{MAX_DOCUMENT_CHARS:,}) were left out: pasted logs or files, not chat"
    )


def _names(sources: list[SourceFile]) -> str:
    return ", ".join(s.name for s in sources[:3]) + (" ..." if len(sources) > 3 else "")


def _nothing_found(sources: list[SourceFile], result: ImportResult) -> str:
    if all(not s.data.strip() for s in sources):
        return "the file is empty; expected a chat export or data set"
    if not result.formats:
        return "no chat export or data set among these files"
    return "no text messages found (only media, calls or system notices)"


def load(paths: Iterable[str | os.PathLike], options: ImportOptions | None = None) -> ImportResult:
    skipped: list[str] = []
    sources = read_inputs(list(paths), skipped)
    result = load_sources(sources, options)
    result.skipped_files.extend(skipped)
    return result
