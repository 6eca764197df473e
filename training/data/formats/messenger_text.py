"""What Messenger and Instagram exports do to text: Facebook's mojibake, and the sentences they
write about events ("Alex named the group Road trip.") that are notices, not anyone's message."""

from __future__ import annotations

import re
from collections.abc import Iterable


def repair_mojibake(text: str) -> str:
    """Undo Facebook's UTF-8-bytes-as-Latin-1 escaping, only where that is provably what happened.

    Hand-written because the damage is one exact, known transformation (ftfy guesses among many):
    a string with any character above U+00FF, or whose Latin-1 bytes are not UTF-8, was not
    mangled this way and is returned unchanged.
    """
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


# What Messenger and Instagram write into `content` for events, after the actor's name or
# nickname (a nickname can be anything, so the actor is matched by length, not by name). English
# exports only: other languages' notices are localized and pass through as text.
_ACTOR_EVENTS = re.compile(
    r" (?:named the group\b.*|removed the group (?:name|photo)|changed the group (?:photo|name\b.*)"
    r"|changed the (?:chat )?theme\b.*|(?:set|changed|cleared) (?:the|your|his|her|their) (?:own )?nickname\b.*"
    r"|(?:set|changed) the (?:emoji|quick reaction|word effect)\b.*|added .+ to the group"
    r"|removed .+ (?:from the group|as an admin)|left the (?:group|chat|conversation)"
    r"|joined the group(?: (?:via|using|through) .+)?"
    r"|(?:started|joined|ended|missed) (?:an? |the )?(?:audio |video )?(?:call|chat)"
    r"|created (?:the group|a poll|a plan)\b.*|(?:un)?pinned a message|unsent a message"
    r"|sent (?:an attachment|a link|a photo|a video|a GIF|a sticker|a file|a post|a location|a live location"
    r"|a voice message|an audio (?:message|clip)|\d+ (?:photos|videos))"
    r"|shared (?:a|their) (?:story|post|reel|link|location|live location|photo|video)(?: (?:by|from) .+)?"
    r"|reacted .{1,20} to (?:your|a) message|replied to (?:your|their) story|mentioned you in (?:their|a) story"
    r"|(?:liked|loved) a message|waved at you|made .+ an admin|(?:is|are) no longer an admin"
    r"|are now connected on Messenger|(?:are|is) (?:now )?secured with end-to-end encryption\b.*"
    r"|turned (?:on|off) (?:disappearing messages|vanish mode|end-to-end encryption)\b.*"
    r")\.?$"
)
# A word every pattern above has right after the actor (or later, for "no longer" and "secured"):
# a set lookup on the first words skips the regex for almost every real message.
_EVENT_WORDS = frozenset(
    "named removed changed set cleared added left joined started ended missed created pinned unpinned "
    "unsent sent shared reacted replied mentioned liked loved waved made longer connected turned secured".split()
)
_EXACT_NOTICES = frozenset(
    {
        "You are now connected on Messenger",
        "Liked a message",
        "Audio call ended",
        "Video chat ended",
        "Video call ended",
        "The video chat ended",
        "The call ended",
        "Missed audio call",
        "Missed video call",
        "Missed call",
        "This message was unsent",
        "You unsent a message",
    }
)
_NOTICE_PREFIXES = (
    "Say hi to your new Facebook friend",
    "You missed a call from",
    "You missed a video chat with",
    "Messages and calls are secured with end-to-end encryption",
    "Messages you send to this chat",
    "You can now message and call each other",
    "Reacted ",
)
_MAX_ACTOR = 80


def _alternatives(words: Iterable[str]) -> str:
    """A regex alternation of `words` factored by shared prefixes ("se(?:cured|nt|t)").

    Python's regex engine tries alternatives one after another at every candidate position;
    factored, it reads each character once: 40% faster than "secured|sent|set|..." here.
    """
    tree: dict = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def pattern(node: dict) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
        return body + "?" if "" in node else body

    return pattern(tree)


# " <event word>" followed by a space or the end: what every word of `text.split(" ", 16)[1:16]`
# that is in _EVENT_WORDS looks like in the text. Searched first because, on a million messages,
# one regex scan costs a third of splitting each text into words.
_EVENT_WORD = re.compile(f" {_alternatives(_EVENT_WORDS)}(?![^ ])")


def is_generated_notice(text: str) -> bool:
    """Whether `text` is a sentence Messenger/Instagram wrote about an event (one line, short)."""
    if "\n" in text:
        return False
    if text.rstrip(".") in _EXACT_NOTICES:
        return True
    if text.startswith(_NOTICE_PREFIXES):
        return not text.startswith("Reacted ") or " to your message" in text or " to a message" in text
    if _EVENT_WORD.search(text) is None or _EVENT_WORDS.isdisjoint(text.split(" ", 16)[1:16]):
        return False
    match = _ACTOR_EVENTS.search(text)
    return match is not None and 0 < match.start() <= _MAX_ACTOR
