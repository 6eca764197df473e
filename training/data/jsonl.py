"""JSON Lines: every reader's line-by-line parsing, and rows written fast.

Reading (`records`): each non-blank line as (where, record), where = "NAME line N", so every
reader's errors name the file and line alike. Writing: the bytes of `json.dumps(row, ensure_ascii=False)` per line, written fast.

json.dumps (and JSONEncoder.encode) builds a new C encoder for every call; a million-message
export makes ~250,000 rows, and that set-up was ~15% of writing them. Here one C encoder, made with
exactly the arguments JSONEncoder.encode passes it, encodes every row of a file, so the output is
the same bytes (tests/test_prepare_golden.py compares them), and rows go to the file in batches.
The cyclic collector is paused meanwhile: the encoder's work would make it rescan every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from json import encoder as json_encoder
from pathlib import Path
from typing import IO, Any

from training.data.collector import collector_paused
from training.errors import UserError

_BATCH = 1000  # rows per write call


def records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for each non-blank line of a JSONL file, where = "NAME line N"; a line that is
    not JSON is a UserError naming it. Opening the file (missing, not UTF-8) is the caller's to report."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{where}: not valid JSON ({error.msg})") from None
            yield where, record


def write_rows(handle: IO[str], rows: Iterable[Any]) -> None:
    """One JSON document per line, exactly as `json.dumps(row, ensure_ascii=False)` writes it."""
    encode = _row_encoder()
    batch: list[str] = []
    with collector_paused():
        for row in rows:
            batch.append(encode(row))
            if len(batch) == _BATCH:
                handle.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            handle.write("\n".join(batch) + "\n")


def _row_encoder() -> Callable[[Any], str]:
    settings = json.JSONEncoder(ensure_ascii=False)
    make = json_encoder.c_make_encoder
    if make is None:  # a Python built without the _json accelerator
        return settings.encode
    # The arguments JSONEncoder.iterencode passes for a one-shot encode; a fresh `markers` dict per
    # file, as each encode call gets one (it finds circular references).
    one_shot = make(
        {},
        settings.default,
        json_encoder.encode_basestring,
        settings.indent,
        settings.key_separator,
        settings.item_separator,
        settings.sort_keys,
        settings.skipkeys,
        settings.allow_nan,
    )
    return lambda row: "".join(one_shot(row, 0))
