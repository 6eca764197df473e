"""Fine-tuning data set files: a JSON array, JSON Lines, or a CSV with a header row.

A file's shape comes from its first record (or the header), and every later record must have the
same shape, so a half-converted file fails on its first bad line instead of training on a mix.
What each shape means, and how a record becomes a Conversation or Document, is in dataset_records.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from training.conversation import ImportResult
from training.data.formats.base import ImportOptions
from training.data.formats.dataset_records import (
    CSV_HEADERS,
    KNOWN_SHAPES,
    detect_shape,
    expected_error,
    keep_record,
)
from training.data.sources import SourceFile, parse_json
from training.errors import UserError

NAME = "dataset"
LABEL = "Fine-tuning data set"

# No other reader wants these; claiming them here turns "unknown format" into a line-N error.
ALWAYS_CLAIMED_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
_DECODER = json.JSONDecoder()
_IDENTIFIER = re.compile(r"^\w+$")


@dataclass
class _Record:
    number: int  # line for JSONL/CSV, 1-based position for a JSON array
    where: str  # "line 3" / "item 3"
    value: Any


# ---------------------------------------------------------------- files to records


def _load(source: SourceFile) -> tuple[str, list[_Record], _Record | None]:
    """(container, records, CSV header as a record) of one file."""
    text = source.text()
    stripped = text.lstrip()
    if not stripped:
        raise UserError(f"{source.name}: the file is empty; expected data set records ({KNOWN_SHAPES})")
    if source.suffix in {".csv", ".tsv"} or stripped[0] not in "[{":
        header, records = _csv_records(source, text)
        return "CSV", records, header
    container, records = _json_records(source, text)
    return container, records, None


def _json_records(source: SourceFile, text: str) -> tuple[str, list[_Record]]:
    if text.lstrip().startswith("["):
        items = _whole_json(source, text)
        return "JSON", [_Record(number, f"item {number}", item) for number, item in enumerate(items, 1)]
    # Split on "\n" only: str.splitlines would also cut at U+2028, which JSON strings may hold raw.
    lines = text.split("\n")
    records: list[_Record] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            # JSON strings cannot hold a raw line break, so an open string also means the value ran out.
            ran_out = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
            if not records and ran_out:  # the first value goes on past its line: one pretty-printed object
                return "JSON", [_Record(1, "item 1", _whole_json(source, text))]
            last = not any(rest.strip() for rest in lines[number:])
            hint = "; the file looks truncated" if last and ran_out else ""
            raise UserError(
                f"{source.name}: line {number}: not valid JSON at column {exc.colno} ({exc.msg}){hint}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{source.name}: line {number}: not readable JSON ({exc})") from None
        records.append(_Record(number, f"line {number}", value))
    return "JSONL", records


def _whole_json(source: SourceFile, text: str) -> Any:
    try:
        return parse_json(text, source.name)
    except (ValueError, RecursionError) as exc:  # limits json enforces beyond syntax (depth, huge ints)
        raise UserError(f"{source.name}: not readable JSON ({exc})") from None


def _csv_records(source: SourceFile, text: str) -> tuple[_Record | None, list[_Record]]:
    delimiter = _csv_delimiter(source, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: _Record | None = None
    records: list[_Record] = []
    start = 1
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                pass
            elif header is None:
                columns = [cell.strip().lower() for cell in row]
                header = _Record(start, f"line {start}", dict.fromkeys(columns, ""))
            elif len(row) != len(columns):
                raise UserError(
                    f"{source.name}: line {start}: expected {len(columns)} columns like the header but found "
                    f"{len(row)}; quote cells that hold {'tabs' if delimiter == chr(9) else repr(delimiter)} or line breaks"
                )
            else:
                records.append(_Record(start, f"line {start}", dict(zip(columns, row))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{source.name}: line {reader.line_num}: not valid CSV ({exc})") from None
    return header, records


def _csv_delimiter(source: SourceFile, text: str) -> str:
    """The delimiter under which the header is a known one (Excel in many locales writes ';')."""
    order = "\t,;" if source.suffix == ".tsv" else ",\t;"
    first_line = text.lstrip().split("\n", 1)[0]
    for delimiter in order:
        if detect_shape(_header_probe(first_line, delimiter)):
            return delimiter
    return order[0]


def _header_probe(line: str, delimiter: str) -> dict:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return {}
    return dict.fromkeys((cell.strip().lower() for cell in cells), "")


# ---------------------------------------------------------------- one file to the result


def _parse_file(source: SourceFile, result: ImportResult) -> None:
    container, records, header = _load(source)
    probe = header or (records[0] if records else None)
    if probe is None:
        raise UserError(f"{source.name}: no records; expected data set records ({KNOWN_SHAPES})")
    shape = detect_shape(probe.value)
    if shape is None:
        if header is not None:
            found = "columns " + ", ".join(repr(column) for column in probe.value)
            raise UserError(
                f"{source.name}: {probe.where}: expected a header row with {CSV_HEADERS} columns but found {found}"
            )
        raise expected_error(
            f"{source.name}: {probe.where}", f"one JSON object per record with {KNOWN_SHAPES} fields", probe.value
        )
    label = f"{shape.name} {container}"
    kept = 0
    for record in records:
        where = f"{source.name}: {record.where}"
        if not isinstance(record.value, dict) or not all(key in record.value for key in shape.keys):
            raise expected_error(where, f"{shape.expected} like {probe.where}", record.value)
        kept += keep_record(record.value, shape, f"{source.name}#{record.number}", label, where, result)
    if not kept:
        result.warnings.append(f"{source.name}: none of its {len(records)} records has any text")
    result.formats[label] += 1


# ---------------------------------------------------------------- the reader protocol


def sniff(source: SourceFile) -> bool:
    if source.looks_binary():
        return False
    if source.suffix in ALWAYS_CLAIMED_SUFFIXES:
        return True
    try:
        return detect_shape(_probe(source)) is not None
    except (ValueError, RecursionError, csv.Error):
        return False


def _probe(source: SourceFile) -> Any:
    """The first record, or the CSV header as a record, read from the head of the file only."""
    head = source.head().lstrip()
    if head[:1] in ("[", "{"):
        start = re.match(r"\[\s*", head).end() if head[0] == "[" else 0
        try:
            return _DECODER.raw_decode(head, start)[0]
        except json.JSONDecodeError:
            # One record can outgrow the 64 KiB head (a long conversation); 4 MiB is still cheap.
            return _DECODER.raw_decode(source.head(4 * 1024 * 1024).lstrip(), start)[0]
    first_line = head.split("\n", 1)[0]
    for delimiter in ",\t;":
        probe = _header_probe(first_line, delimiter)
        # Without a .csv name only an unmistakable header counts, so a prose first line
        # like "Question, answer, and more" stays text.
        shape = detect_shape(probe)
        if len(probe) >= 2 and all(_IDENTIFIER.match(c) for c in probe) and shape and shape.convert:
            return probe
    return None


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    result = ImportResult()
    for source in sources:
        _parse_file(source, result)
    return result


def json_problem(source: SourceFile) -> str | None:
    """Why a JSON or JSON Lines file does not parse (without the file name), or None if it parses."""
    try:
        _json_records(source, source.text())
    except UserError as exc:
        return str(exc).removeprefix(f"{source.name}: ")
    return None
