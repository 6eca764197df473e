"""WhatsApp "Export chat" text: `_chat.txt` in the iOS zip, `WhatsApp Chat with X.txt` on Android.

Hand-written because the Python parsers on PyPI (whatstk, chat-miner) bring pandas and plotting
libraries, return data frames and do not say why a line was dropped; the export is a line grammar
that one regular expression per file reads in well under a second.

Message lines read, after invisible marks are removed and NBSP / U+202F become spaces:
    [3/18/22, 14:56:01] Name: text          iOS: brackets, seconds, CRLF
    18/03/2022, 14:56 - Name: text          Android: 24-hour clock, " - "
    3/6/18, 1:55 PM - Name: text            12-hour: AM/PM, a.m./p.m., "p. m.", U+202F or NBSP before it
    03-06-2018, 01.55 PM - Name: text       dashed dates, dotted times
    13.06.18 21.25.15: Name: text           dotted dates, ": " after the time
    [06.13.18 21:25:15] Name: text
    13.6.2018 klo 21.25.15 - Name: text     Finnish "klo"
    13. 6. 2018. 21:25:15 Name: text        spaced dates, only a space before the name
    [2018/06/13, 21:25:15] Name: text       year first (only with the comma, which log files lack)
Day/month order is inferred per file; 2-digit years are 20YY. Not read: Buddhist or Japanese era
years, localized AM/PM words (午後, vorm.) and non-English placeholders, which stay message text.
Times carry no zone, so they are read as if UTC: only the gaps between messages matter.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import pairwise
from pathlib import PurePosixPath
from typing import NamedTuple

from training.conversation import Conversation, Drop, ImportResult, Message
from training.data.formats.base import ImportOptions
from training.data.sources import SourceFile
from training.errors import UserError

NAME = "whatsapp"
LABEL = "WhatsApp"

# U+200E stays until a line's author is split off: on iOS it marks WhatsApp's own lines.
_LRM = "\u200e"
_INVISIBLE = "\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\r"
_CLEAN = str.maketrans({**dict.fromkeys(_INVISIBLE), "\u00a0": " ", "\u202f": " "})

# --- the timestamp prefix -------------------------------------------------------------------
_AMPM = r"\s?(?P<ampm>[aApP]\.?\s?[mM]\.?)(?![^\W\d_])"
_TAILS = {"]": r"\]\s?", "-": r"\s?[-–]\s", ":": r":\s", " ": r"\s"}
_ANY_TAIL = r"(?(open)\]\s?|(?:(?P<dash>\s?[-–]\s)|(?P<colon>:\s)|\s))"


class _Shape(NamedTuple):
    """What stays the same on every message line of one export."""

    tail: str  # what ends the prefix: "]", "-", ":" or " "
    date_sep: str
    time_sep: str
    twelve_hour: bool


def _header(opening: str, date_sep: str, time_sep: str, ampm: str, tail: str) -> re.Pattern[str]:
    return re.compile(
        rf"{_LRM}*{opening}(?P<a>\d{{1,4}})(?P<dsep>{date_sep})\s?(?P<b>\d{{1,2}})(?P=dsep)\s?(?P<c>\d{{1,4}})\.?"
        rf"(?P<comma>,)?\s+(?:klo\s+)?"
        rf"(?P<H>\d{{1,2}})(?P<tsep>{time_sep})(?P<M>\d{{2}})(?:(?P=tsep)(?P<S>\d{{2}}))?"
        rf"{ampm}{tail}(?P<rest>.*)"
    )


# Any shape; used to sniff and to learn a file's shape from its first lines.
_GENERAL = _header(r"(?P<open>\[)?", r"[./-]", r"[.:]", f"(?:{_AMPM})?", _ANY_TAIL)


@lru_cache(maxsize=64)
def _specific(shape: _Shape) -> re.Pattern[str]:
    # Fixing the shape keeps a continuation line such as "12.05.2020 10:00 dentist" inside an
    # Android ("18/03/2022, 14:56 - ") export from being read as a new message.
    return _header(
        r"\[" if shape.tail == "]" else "",
        re.escape(shape.date_sep),
        re.escape(shape.time_sep),
        _AMPM if shape.twelve_hour else "",
        _TAILS[shape.tail],
    )


def _shape(match: re.Match[str]) -> _Shape:
    tail = "]" if match["open"] else "-" if match["dash"] else ":" if match["colon"] else " "
    return _Shape(tail, match["dsep"], match["tsep"], match["ampm"] is not None)


def _plausible(match: re.Match[str]) -> bool:
    """A date and clock that some day/month order can read (values only, not the order)."""
    a, b, c = match["a"], match["b"], match["c"]
    first, second = int(a), int(b)
    if len(a) == 4:  # year first exists only as "[2018/06/13, 21:25:15]"
        date_ok = match["comma"] is not None and 1 <= second <= 12 and 1 <= int(c) <= 31
    else:
        date_ok = len(a) <= 2 and len(c) in (2, 4) and 1 <= min(first, second) <= 12 and max(first, second) <= 31
    return date_ok and int(match["H"]) <= 23 and int(match["M"]) <= 59 and int(match["S"] or 0) <= 59


def _message_line(line: str) -> _Shape | None:
    """The shape of a line that reads as a WhatsApp message start, else None."""
    match = _GENERAL.match(line)
    if match is None or not _plausible(match):
        return None
    shape = _shape(match)
    # With only a space before the name, an author ("Name: ") is what tells it from prose.
    if shape.tail == " " and ": " not in match["rest"]:
        return None
    return shape


def _choose_header(lines: list[str], sample: int = 50) -> re.Pattern[str]:
    shapes: Counter[_Shape] = Counter()
    for line in lines:
        shape = _message_line(line)
        if shape is not None:
            shapes[shape] += 1
            if shapes.total() >= sample:
                break
    return _specific(shapes.most_common(1)[0][0]) if shapes else _GENERAL


# --- dates ------------------------------------------------------------------------------
# Positions of (year, month, day) among the three date numbers of a line.
_YEAR_MONTH_DAY, _DAY_MONTH_YEAR, _MONTH_DAY_YEAR = (0, 1, 2), (2, 1, 0), (2, 0, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _date_order(matches: list[re.Match[str]], twelve_hour: bool) -> tuple[int, int, int]:
    """Which number is the day, from the whole file (no export says so)."""
    # Counted rather than "any", so one date-like line inside a message cannot flip the file.
    dates = [(int(m["a"]), int(m["b"]), m["c"]) for m in matches if len(m["a"]) <= 2]
    if len(dates) * 2 < len(matches):
        return _YEAR_MONTH_DAY
    above = (sum(first > 12 for first, _, _ in dates), sum(second > 12 for _, second, _ in dates))
    if above != (0, 0):
        return _DAY_MONTH_YEAR if above[0] >= above[1] else _MONTH_DAY_YEAR
    falls = moves = (0, 0)
    for (a0, b0, year0), (a1, b1, year1) in pairwise(dates):
        if year0 == year1:  # within a year only the day falls back (when a new month starts)
            falls = (falls[0] + (a1 < a0), falls[1] + (b1 < b0))
            moves = (moves[0] + (a1 != a0), moves[1] + (b1 != b0))
    for first, second in (falls, moves):  # the day also changes more often than the month
        if first != second:
            return _DAY_MONTH_YEAR if first > second else _MONTH_DAY_YEAR
    # Nothing to go by: 12-hour clocks mostly come with US month-first dates.
    return _MONTH_DAY_YEAR if twelve_hour else _DAY_MONTH_YEAR


def _day_start(numbers: tuple[str, str, str], order: tuple[int, int, int]) -> float | None:
    year_text = numbers[order[0]]
    if len(year_text) not in (2, 4):
        return None
    year = int(year_text) + (2000 if len(year_text) == 2 else 0)
    try:
        day = date(year, int(numbers[order[1]]), int(numbers[order[2]]))
    except ValueError:
        return None
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400.0


def _clock(hour: int, minute: int, second: int, ampm: str | None) -> int | None:
    if ampm and 1 <= hour <= 12:
        hour = hour % 12 + (12 if ampm[0] in "pP" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour * 3600 + minute * 60 + second


# --- what a line says ----------------------------------------------------------------------
_EDITED = re.compile(r"\s*<This message was edited>$")
_STICKER = re.compile(r"(?i:sticker omitted|STK-\S+\.webp \(file attached\)|<attached: \S*STICKER\S*>)")
_MEDIA = re.compile(
    r"(?i:<Media omitted>|(?:image|video|audio|GIF|Contact card) omitted|.*\bdocument omitted"
    r"|<attached: [^>]*>|.+ \(file attached\))|null"  # view-once media is the literal "null"
)
_CALL = re.compile(r"(?:(?:Missed|Silenced) )?(?:group )?(?:voice|video) call(?:\s*[,•].*)?", re.I)
_PLACEHOLDERS = [
    (
        Drop.UNSENT,
        re.compile(
            r"(?:This message was deleted(?: by admin .+)?|You deleted this message(?: as admin)?"
            r"|Waiting for this message(?:\. This may take a while)?)\.?",
            re.I,
        ),
    ),
    (Drop.CALL, _CALL),
    (Drop.LOCATION, re.compile(r"(?:live )?location: https?://\S+|Live location shared\.?", re.I)),
]
# WhatsApp's own sentences when an export lost the U+200E that usually marks them.
_SYSTEM_TEXT = re.compile(
    r"Messages and calls are end-to-end encrypted|Messages to this group are now secured"
    r"|Your security code with .+ changed|You're now an admin$|This chat is with a business account"
    r"|Disappearing messages were turned|You (?:un)?blocked this contact",
    re.I,
)
_GROUP_EVENT = re.compile(
    r"created group|\badded\b|joined using this group's invite link|changed the subject"
    r"|changed this group's icon|changed the group description|\bleft$|\bremoved\b|now an admin",
    re.I,
)
# Android group notices have no author, but a group name can hold ": ".
_NAMED_GROUP_EVENT = re.compile(r'[^:"]+ (?:created group|changed the (?:subject|group name) (?:from ".*" )?to) "')


@dataclass(slots=True)
class _Event:
    sender: str  # "" on WhatsApp's own lines that name no one
    text: str
    timestamp: float
    drop: str | None  # a Drop reason, None when kept
    group_event: bool = False


def _split_author(rest: str) -> tuple[str, str] | None:
    """(author, body) of a message line; None for WhatsApp's own lines without an author."""
    author, sep, body = rest.partition(": " + _LRM)  # iOS notices: "Chat name: \u200eAlice left"
    if sep:
        return author, _LRM + body
    if _NAMED_GROUP_EVENT.match(rest):
        return None
    author, sep, body = rest.partition(": ")
    return (author, body) if sep else None


def _sender(author: str) -> str:
    name = author.replace(_LRM, "").strip()
    return name[1:].strip() if name.startswith("~") else name  # "~ Name": not in the contacts


def _drop_reason(text: str, marked: bool) -> tuple[str | None, str]:
    """(a Drop reason or None, the text to keep)."""
    if not text:
        return Drop.EMPTY, text
    first, _, after = text.partition("\n")
    after = after.strip()
    if _STICKER.fullmatch(first) and not after:
        return Drop.STICKER, text
    if _MEDIA.fullmatch(first):  # a caption follows an attachment on its own lines
        return (None, after) if after else (Drop.MEDIA, text)
    if text.startswith("POLL:"):
        return Drop.POLL, text
    if after:
        return None, text
    for reason, pattern in _PLACEHOLDERS:
        if pattern.fullmatch(text):
            return reason, text
    if marked or _SYSTEM_TEXT.match(text):
        return Drop.SYSTEM, text
    return None, text


def _event(rest: str, continuation: list[str], timestamp: float) -> _Event:
    split = _split_author(rest)
    if split is None:
        notice = "\n".join([rest, *continuation]).replace(_LRM, "").strip()
        reason = Drop.CALL if _CALL.fullmatch(notice) else Drop.SYSTEM
        return _Event("", notice, timestamp, reason, bool(_GROUP_EVENT.search(notice)))
    author, body = split
    text = _EDITED.sub("", "\n".join([body, *continuation]).replace(_LRM, "").strip())
    reason, text = _drop_reason(text, marked=body.startswith(_LRM))
    sender = _sender(author)
    if not sender and reason is None:
        reason = Drop.SYSTEM
    group_event = reason == Drop.SYSTEM and bool(_GROUP_EVENT.search(text))
    return _Event(sender, text, timestamp, reason, group_event)


# --- files -------------------------------------------------------------------------------
def _read_events(source: SourceFile) -> tuple[list[_Event], list[str]]:
    lines = source.text().translate(_CLEAN).split("\n")
    header = _choose_header(lines)
    starts = [(index, match) for index, line in enumerate(lines) if (match := header.match(line))]
    usable = [match for _, match in starts if _plausible(match)]
    has_ampm = "ampm" in header.groupindex
    order = _date_order(usable, twelve_hour=has_ampm and any(m["ampm"] for m in usable[:50]))
    heads: list[tuple[int, str, float]] = []
    days: dict[tuple[str, str, str], float | None] = {}
    for index, match in starts:
        numbers = (match["a"], match["b"], match["c"])
        if numbers not in days:
            days[numbers] = _day_start(numbers, order)
        ampm = match["ampm"] if has_ampm else None
        clock = _clock(int(match["H"]), int(match["M"]), int(match["S"] or 0), ampm)
        if days[numbers] is not None and clock is not None:
            heads.append((index, match["rest"], days[numbers] + clock))
    if not heads:
        raise UserError(
            f"{source.name}: no WhatsApp message lines found; expected lines like "
            "'[3/18/22, 14:56:01] Name: text' or '18/03/2022, 14:56 - Name: text'"
        )
    ends = [index for index, _, _ in heads[1:]] + [len(lines)]
    events = [_event(rest, lines[index + 1 : end], ts) for (index, rest, ts), end in zip(heads, ends)]
    return events, _warnings(source, lines[: heads[0][0]], len(starts) - len(heads))


def _warnings(source: SourceFile, preamble: list[str], impossible: int) -> list[str]:
    warnings = []
    if any(line.strip(_LRM + " \t") for line in preamble):
        warnings.append(f"{source.name}: skipped the text before the first message line")
    if impossible:
        warnings.append(
            f"{source.name}: {impossible} line(s) start like a message but carry an impossible "
            "date or time; read them as text of the message before"
        )
    return warnings


_TITLED_FILE = re.compile(r"WhatsApp Chat (?:with|-) (?P<name>.+?)(?: \(\d+\))?(?:\.txt|\.zip)?", re.I)


def _title(source: SourceFile, events: list[_Event], people: list[str]) -> str:
    for part in (source.basename, PurePosixPath(source.parent).name):
        titled = _TITLED_FILE.fullmatch(part)
        if titled:
            return titled["name"].strip()
    # iOS writes its notices under the chat's own name.
    named = next((e.sender for e in events if e.drop == Drop.SYSTEM and e.sender), "")
    if named:
        return named
    shown = ", ".join(people[:3]) + (f" and {len(people) - 3} more" if len(people) > 3 else "")
    return shown or source.basename


def _conversation(source: SourceFile, events: list[_Event]) -> Conversation:
    kept = [Message(e.sender, e.text, e.timestamp) for e in events if e.drop is None]
    kept.sort(key=lambda message: message.timestamp)  # stable: equal times keep file order
    people = list(dict.fromkeys(e.sender for e in events if e.sender and e.drop != Drop.SYSTEM))
    return Conversation(
        id=source.name,
        title=_title(source, events, people),
        messages=kept,
        is_group=len(people) > 2 or any(e.group_event for e in events),
        source_format=NAME,
    )


def sniff(source: SourceFile) -> bool:
    """True when one of the first non-empty lines starts with a WhatsApp timestamp."""
    if source.looks_binary():
        return False
    lines = source.head(8192).translate(_CLEAN).split("\n")
    first = [line for line in lines if line.strip(_LRM + " \t")][:5]
    return any(_message_line(line) is not None for line in first)


def parse(sources: list[SourceFile], options: ImportOptions) -> ImportResult:
    result = ImportResult()
    for source in sources:
        events, warnings = _read_events(source)
        result.formats[LABEL] += 1
        result.dropped.update(e.drop for e in events if e.drop)
        result.warnings.extend(warnings)
        conversation = _conversation(source, events)
        if conversation.messages:
            result.conversations.append(conversation)
    return result
