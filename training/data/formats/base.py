"""What a format reader is: a content sniffer plus a parser of all files it claimed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from training.conversation import ImportResult
from training.data.sources import SourceFile


@dataclass
class ImportOptions:
    # Raw text/code files are cut into chunks of about this many tokens (seed 003 used 8192
    # with Mistral; smaller suits the small models people train here).
    text_chunk_tokens: int = 1024
    # Counts tokens for chunking; without a tokenizer we estimate 4 characters per token.
    count_tokens: Callable[[str], int] | None = None


class FormatReader(Protocol):
    NAME: str  # machine name, e.g. "messenger"
    LABEL: str  # what the user sees, e.g. "Facebook Messenger / Instagram"

    def sniff(self, source: SourceFile) -> bool:
        """True when the content (not only the name) says this file is in this format. Never raises."""

    def parse(self, sources: list[SourceFile], options: ImportOptions) -> ImportResult:
        """All files sniffed as this format -> conversations. Raises only UserError."""
