"""Hand-written chats of "Sam Rivera", a fictional Portland barista, as plain data.

Everything here is invented. The dialogues (one module per thread in samples/dialogues/, in the
order below) are the single source for the bundled samples:
build_samples.py turns them into a Messenger export and an OpenAI-style JSONL, and the
benchmark generator samples its message texts from them.

A conversation is a dict:
  thread     key into THREADS
  day, at    start date (days after BASE_DATE) and local clock time "HH:MM"
  lines      (minute, speaker, text): minute is the offset from the start, speaker a PEOPLE key
  events     optional (minute, speaker, kind, detail): non-text Messenger events; an event
             sorts before the text lines of the same minute
  reactions  optional (line index, reactor, emoji): a reaction on lines[index]
Within a conversation no gap reaches 60 minutes, and conversations are days apart, so a
60-minute session split gives back exactly these conversations.
"""

from __future__ import annotations

import datetime as dt

from samples.dialogues import crew, jordan, maya, mom, theo

SELF = "sam"
BASE_DATE = dt.datetime(2025, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=-8)))  # Portland, PST

PEOPLE = {
    "sam": "Sam Rivera",
    "maya": "Maya Chen",
    "jordan": "Jordan Okafor",
    "mom": "Elena Rivera",
    "priya": "Priya Nair",
    "leo": "Leo Duarte",
    "theo": "Theo Brandt",
}

# section: "inbox" or "archived_threads"; folder: the thread folder's <slug>_<id> name.
THREADS = {
    "maya": {"title": "Maya Chen", "section": "inbox", "folder": "mayachen_10158832701945512",
             "members": ["maya", "sam"]},
    "jordan": {"title": "Jordan Okafor", "section": "inbox",
               "folder": "jordanokafor_10160047318826093", "members": ["jordan", "sam"]},
    "mom": {"title": "Elena Rivera", "section": "inbox", "folder": "elenarivera_10157420093317746",
            "members": ["mom", "sam"]},
    "crew": {"title": "climbing crew 🧗", "section": "inbox",
             "folder": "climbingcrew_6723905518104419", "members": ["maya", "priya", "leo", "sam"]},
    "theo": {"title": "Theo Brandt", "section": "archived_threads",
             "folder": "theobrandt_10156390274418860", "members": ["theo", "sam"]},
}

# Event kinds: photo, sticker, missed_call, share (detail = link), unsent, connected (the
# "You are now connected on Messenger" notice), rename (detail = new group title).
CONVERSATIONS: list[dict] = [
    *maya.CONVERSATIONS,
    *jordan.CONVERSATIONS,
    *mom.CONVERSATIONS,
    *crew.CONVERSATIONS,
    *theo.CONVERSATIONS,
]
