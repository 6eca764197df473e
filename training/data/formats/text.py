"""Plain text and code: the fallback for readable files no chat or data set reader claimed.

Seed 003 trained on a repository's wiki, code and pull requests as raw text, cut into chunks of
at most a token budget. Each chunk starts with a `File: <path>` line, so the model learns which
file the text came from, and cuts fall at line ends so code is not split mid-statement.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Callable, Iterator

from training.conversation import Document, Drop, ImportResult
from training.data.formats.base import ImportOptions
from training.data.sources import SourceFile
from training.errors import UserError

NAME = "text"
LABEL = "Plain text / code"

# These are data set or export files; read as prose they would train on broken JSON/CSV,
# so they are left for the registry to report instead.
NEVER_CLAIMED_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
# A JSON head with any of these keys is a chat export or data set that its reader could not read.
_CHAT_KEYS = re.compile(
    r'"(messages|participants|conversations|instruction|prompt|personal_information|sender_name|text_entities)"\s*:'
)
_CHARS_PER_TOKEN = 4  # the usual estimate for English text and code with BPE tokenizers
_MAX_CHARS_PER_TOKEN = 16  # more than any tokenizer packs into one token, bar long runs of one character


def sniff(source: SourceFile) -> bool:
    if source.suffix in NEVER_CLAIMED_SUFFIXES or source.looks_binary() or not _head_is_utf8(source):
        return False
    head = source.head().lstrip()
    # JSON is data, not prose: in a whole export (profile, ads, settings files) or a code
    # folder (package.json) it is skipped rather than trained on as text.
    if source.suffix == ".json" or head[:1] == "{":
        return False
    return not (head[:1] == "[" and _CHAT_KEYS.search(head))


def _head_is_utf8(source: SourceFile) -> bool:
    # Incremental decoding tolerates a character cut in half at the end of the head.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(source.data[:65536], final=False)
    except UnicodeDecodeError:
        return False
    return True


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    count = options.count_tokens or estimate_tokens
    result = ImportResult()
    for source in sources:
        text = source.text()
        if not text.strip():
            result.dropped[Drop.EMPTY] += 1
            continue
        header = f"File: {source.name}\n"
        budget = options.text_chunk_tokens - count(header)
        if budget < 1:
            raise UserError(
                f"text_chunk_tokens: {options.text_chunk_tokens} tokens leave no room for text after the "
                f"'File: {source.name}' line; use a larger chunk size"
            )
        for index, body in enumerate(chunk_lines(text, budget, count)):
            result.documents.append(Document(id=f"{source.name}#{index}", text=header + body, source_format=NAME))
        result.formats[LABEL] += 1
    return result


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def chunk_lines(text: str, budget: int, count: Callable[[str], int]) -> Iterator[str]:
    """Consecutive pieces of `text` of at most `budget` tokens each, cut at line ends.

    Joined, the pieces give back `text` (whitespace-only pieces are left out). A line longer
    than the budget is cut inside the line. Hand-written: text splitters in libraries cut at
    characters or sentences, not at a tokenizer's budget with whole lines.
    """
    lines: list[str] = []
    used = 0
    for line, tokens in _pieces(text, budget, count):
        if lines and used + tokens > budget:
            yield from _nonblank("".join(lines))
            lines, used = [], 0
        lines.append(line)
        used += tokens
    yield from _nonblank("".join(lines))


def _nonblank(chunk: str) -> Iterator[str]:
    if chunk.strip():
        yield chunk


def _pieces(text: str, budget: int, count: Callable[[str], int]) -> Iterator[tuple[str, int]]:
    """(line, tokens) for each line of text (line ends kept); a line over the budget comes in parts."""
    for line in text.splitlines(keepends=True):
        while line:
            # Counting at most this window keeps a megabyte-long minified line from being
            # tokenized again for every part cut from it.
            piece = line[: budget * _MAX_CHARS_PER_TOKEN]
            tokens = count(piece)
            if tokens > budget:
                piece = piece[: _longest_prefix_within(piece, budget, count)]
                tokens = count(piece)
            yield piece, tokens
            line = line[len(piece) :]


def _longest_prefix_within(text: str, budget: int, count: Callable[[str], int]) -> int:
    """Length of the longest prefix of `text` that counts at most `budget` tokens (at least 1)."""
    low, high = 1, len(text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return low
