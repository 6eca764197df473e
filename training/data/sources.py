"""Reading what the user hands us (files, folders, zips) into named byte blobs, safely.

Every later error names `SourceFile.name`, so it is the path the user recognises: for a file
inside a zip it is `export.zip/messages/inbox/alice_1/message_1.json`.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from training.cancel import check_cancelled
from training.errors import UserError

MIB = 1024 * 1024
# Generous for chat text (a 379k-message Telegram chat is ~150 MB), small enough to refuse a
# stray video or disk image before it fills memory. Overridable for unusual exports.
MAX_FILE_BYTES = int(os.environ.get("TALKLIKE_MAX_FILE_MB", "1024")) * MIB
MAX_TOTAL_BYTES = int(os.environ.get("TALKLIKE_MAX_TOTAL_MB", "4096")) * MIB
# Text compresses ~5-20x; a ratio beyond this, for one member or the whole archive, means a zip bomb.
MAX_COMPRESSION_RATIO = 200
# Below this many expanded bytes the ratio says nothing (a small file of one repeated line is fine).
RATIO_CHECKED_FROM_BYTES = 1 * MIB
MAX_ZIP_MEMBERS = 200_000

# Attachments that ride along in chat exports; never chat text, so never read into memory.
SKIPPED_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".heic",
    ".bmp",
    ".tiff",
    ".svg",
    ".ico",
    ".mp4",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".3gp",
    ".mp3",
    ".m4a",
    ".aac",
    ".ogg",
    ".opus",
    ".wav",
    ".flac",
    ".pdf",
    ".doc",
    ".docx",
    ".xls",
    ".xlsx",
    ".ppt",
    ".pptx",
    ".vcf",
    ".zip",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".7z",
    ".rar",
    ".tar",
    ".exe",
    ".dll",
    ".so",
    ".bin",
    ".safetensors",
    ".pt",
    ".pth",
    ".gguf",
    ".woff",
    ".woff2",
    ".ttf",
    ".otf",
    ".html",
    ".htm",
    ".css",
}
SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", "__MACOSX"}


@dataclass
class SourceFile:
    """One readable file of the user's input."""

    name: str  # what the user sees in messages
    data: bytes
    # True for a file found inside a folder or zip the user gave: there an unrecognised file
    # (a Facebook export's ads_information.json, say) is skipped, not an error.
    in_container: bool = False

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix.lower()

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name

    @property
    def parent(self) -> str:
        return str(PurePosixPath(self.name).parent)

    def head(self, size: int = 65536) -> str:
        """A decoded prefix for cheap content sniffing (never raises)."""
        return _strip_bom(self.data[:size].decode("utf-8", errors="replace"))

    def text(self) -> str:
        try:
            return _strip_bom(self.data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{self.name}: not UTF-8 text (bad byte at offset {exc.start}); "
                "expected a chat export or data set saved as UTF-8"
            ) from None

    def json(self) -> Any:
        return parse_json(self.text(), self.name)

    def looks_binary(self) -> bool:
        return b"\x00" in self.data[:8192]


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        # A string left open until the end of the file is reported at its start; it is
        # still a file cut short, which is what the user needs to hear.
        cut_in_string = exc.msg.startswith("Unterminated string") and '"' not in text[exc.pos + 1 :]
        if exc.pos >= len(text.rstrip()) - 1 or cut_in_string:
            raise UserError(f"{name}: the JSON ends early at {where}; the file looks truncated") from None
        raise UserError(f"{name}: not valid JSON at {where} ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{name}: JSON nested too deeply to be a chat export or data set") from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise UserError(f"{name}: not usable JSON ({exc})") from None


def read_inputs(
    paths: Iterable[str | os.PathLike], skipped: list[str] | None = None, wanted: str = "chat export or data set files"
) -> list[SourceFile]:
    """Files, folders (recursively) and zips -> SourceFiles, attachments skipped.

    `skipped` collects the names of files left unread (media, hidden folders), so the UI can
    say what it ignored instead of silently dropping it; `wanted` names what was looked for.
    """
    skipped = [] if skipped is None else skipped
    files: list[SourceFile] = []
    budget = [MAX_TOTAL_BYTES]
    for raw in paths:
        check_cancelled()
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
        if path.is_dir():
            _read_dir(path, files, skipped, budget)
        elif path.suffix.lower() == ".zip" or _is_zip(path):
            _read_zip(path, path.name, files, skipped, budget)
        else:
            files.append(_read_file(path, path.name, budget))
    if not files:
        shown = ", ".join(str(p) for p in paths) or "(nothing)"
        raise UserError(f"{shown}: no {wanted} found (only media or empty folders)")
    return files


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _read_file(path: Path, name: str, budget: list[int]) -> SourceFile:
    size = path.stat().st_size
    _charge(name, size, budget)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{name}: cannot be read ({exc.strerror})") from None
    return SourceFile(name=name, data=data)


def _charge(name: str, size: int, budget: list[int]) -> None:
    if size > MAX_FILE_BYTES:
        raise UserError(
            f"{name}: {size / MIB:.0f} MB is over the {MAX_FILE_BYTES // MIB} MB limit for one file; "
            "export fewer chats or raise TALKLIKE_MAX_FILE_MB"
        )
    budget[0] -= size
    if budget[0] < 0:
        raise UserError(
            f"{name}: the input is over the {MAX_TOTAL_BYTES // MIB} MB limit in total; "
            "pick fewer files or raise TALKLIKE_MAX_TOTAL_MB"
        )


def _read_dir(root: Path, files: list[SourceFile], skipped: list[str], budget: list[int]) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            check_cancelled()
            path = Path(dirpath) / filename
            name = f"{root.name}/{path.relative_to(root).as_posix()}"
            if filename.startswith(".") or path.suffix.lower() in SKIPPED_SUFFIXES:
                skipped.append(name)
                continue
            if not stat.S_ISREG(path.lstat().st_mode):  # links could point outside the folder
                skipped.append(name)
                continue
            source = _read_file(path, name, budget)
            source.in_container = True
            if source.looks_binary():
                skipped.append(name)
                continue
            files.append(source)


def _read_zip(path: Path, label: str, files: list[SourceFile], skipped: list[str], budget: list[int]) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{label}: not a readable zip archive ({exc})") from None
    with archive:
        wanted = _zip_members_to_read(archive, label, skipped)
        _check_expansion(label, wanted, budget)
        for name, info in wanted:
            check_cancelled()
            try:
                data = _read_member(archive, info)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise UserError(f"{name}: cannot be unpacked ({exc}); the zip may be truncated") from None
            source = SourceFile(name=name, data=data, in_container=True)
            if source.looks_binary():
                skipped.append(name)
                continue
            files.append(source)


def _zip_members_to_read(archive: zipfile.ZipFile, label: str, skipped: list[str]) -> list[tuple[str, zipfile.ZipInfo]]:
    """(name, entry) of every member worth reading; unsafe paths refused, media listed in `skipped`."""
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise UserError(f"{label}: {len(members)} entries is more than the {MAX_ZIP_MEMBERS} allowed")
    wanted = []
    for info in members:
        if info.is_dir():
            continue
        member = PurePosixPath(info.filename.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or ":" in member.parts[0]:
            raise UserError(f"{label}: entry {info.filename!r} points outside the archive; refusing it")
        name = f"{label}/{member.as_posix()}"
        if (
            any(part in SKIPPED_DIRS or part.startswith(".") for part in member.parts)
            or member.suffix.lower() in SKIPPED_SUFFIXES
        ):
            skipped.append(name)
            continue
        wanted.append((name, info))
    return wanted


def _check_expansion(label: str, wanted: list[tuple[str, zipfile.ZipInfo]], budget: list[int]) -> None:
    """Refuse a zip bomb from its directory alone, before one byte is inflated: every member's size
    against the limits, each member's ratio, and the whole archive's (many members that are each
    small but all absurdly compressed add up)."""
    for name, info in wanted:
        if info.file_size > RATIO_CHECKED_FROM_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
            ratio = info.file_size // max(info.compress_size, 1)
            raise UserError(f"{name}: expands {ratio}x when unpacked; refusing what looks like a zip bomb")
        _charge(name, info.file_size, budget)
    expanded = sum(info.file_size for _, info in wanted)
    packed = sum(info.compress_size for _, info in wanted)
    if expanded > RATIO_CHECKED_FROM_BYTES and expanded > MAX_COMPRESSION_RATIO * packed:
        raise UserError(
            f"{label}: its {len(wanted)} files expand {expanded // max(packed, 1)}x when unpacked "
            f"({expanded / MIB:,.0f} MB); refusing what looks like a zip bomb"
        )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Read at most the declared size + 1: a header that lies about the size cannot make us
    # inflate more than the budget we charged for.
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise UserError(f"{archive.filename}: entry {info.filename!r} is larger than its header says")
    return data
