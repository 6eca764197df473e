"""Optional PII scrubbing: replaces contact details and numbers with placeholders, counting each kind.

Hand-written regexes rather than Presidio (what WeClone uses): Presidio needs spaCy models that
cannot be downloaded offline, and for chat text the pattern-shaped identifiers below are what
leaks; names are left alone on purpose (the persona talks about friends by name).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{3,39}(?![\w:])")
DATE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d\s().-]{5,18}\d(?![\w])")

PLACEHOLDERS = {
    "email": "<email>",
    "url": "<url>",
    "card": "<card number>",
    "iban": "<iban>",
    "ssn": "<id number>",
    "ip": "<ip address>",
    "phone": "<phone number>",
}


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and _luhn_valid(digits)


def _is_ip(match: re.Match) -> bool:
    try:
        ipaddress.ip_address(match.group())
    except ValueError:
        return False
    return True


def _is_phone(match: re.Match) -> bool:
    text = match.group()
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or DATE.fullmatch(text.strip()):
        return False
    # A bare run of digits is more often an amount or an id than a phone number; real phone
    # numbers in chats are written with a + prefix or with separators.
    return text.startswith(("+", "00")) or bool(re.search(r"[\s().-]", text))


# Order matters: URLs before emails would eat mailto targets, cards before phones would
# split a card number into "phones".
_RULES: list[tuple[str, re.Pattern, object]] = [
    ("email", EMAIL, None),
    ("url", URL, None),
    ("iban", IBAN, None),
    ("card", CARD, _is_card),
    ("ssn", SSN, None),
    ("ip", IPV4, _is_ip),
    ("ip", IPV6, _is_ip),
    ("phone", PHONE, _is_phone),
]

# Cheap pre-check: text without '@', '.', ':' or digits cannot contain any of the kinds above,
# which is most chat messages, so they skip the regexes entirely.
_MAYBE_PII = re.compile(r"[@.:\d]")


def scrub(text: str, counts: Counter | None = None) -> str:
    """Replace PII in `text`; add one to counts[kind] per replacement."""
    if not _MAYBE_PII.search(text):
        return text
    for kind, pattern, accept in _RULES:

        def replace(match: re.Match, kind: str = kind, accept=accept) -> str:
            if accept is not None and not accept(match):
                return match.group()
            if counts is not None:
                counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text
