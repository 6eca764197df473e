"""A large synthetic Facebook Messenger "Download your information" export, for benchmarks.

    python bench/make_messenger_export.py OUT_DIR --messages 1000000 --threads 200 \
        [--seed 0] [--zip]

Same layout and encoding as samples/sam_messenger_export.zip: thread folders under
your_facebook_activity/messages/{inbox,archived_threads}/<slug>_<id>/message_N.json, at most
10,000 messages per file, newest first, every string mojibake-encoded. About a fifth of the
threads are groups; about 3% of messages are photos, stickers, calls, shares or unsent ones.
Texts are lines of the Sam Rivera sample dialogues, varied at random so that deduplication
keeps them. The same arguments always write the same files.
"""

from __future__ import annotations

import argparse
import random
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `samples` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from samples import messenger_dyi as dyi  # noqa: E402
from samples.build_samples import PLACEHOLDER_JPEG, PLACEHOLDER_PNG  # noqa: E402
from samples.sam_dialogues import CONVERSATIONS, PEOPLE, SELF  # noqa: E402

OWNER = PEOPLE[SELF]
ZIP_NAME = "messenger_export.zip"
END_MS = 1_751_328_000_000  # 2025-07-01 00:00 UTC: the newest message is a little before this
GROUP_SHARE = 0.2
ARCHIVED_SHARE = 0.05
EVENT_SHARE = 0.03
REACTION_SHARE = 0.04
NEW_SESSION_CHANCE = 1 / 14  # sessions of about 14 messages
SAME_SENDER_CHANCE = 0.4  # another bubble from whoever just sent one
EVENT_WEIGHTS = {"photo": 40, "sticker": 20, "share": 15, "call": 13, "unsent": 12}
STICKER_IDS = [f"{369239263222822 + 7919 * n}_n.png" for n in range(12)]
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Emil",
    "Fatima",
    "Gus",
    "Hana",
    "Iker",
    "Jonas",
    "Kemi",
    "Lena",
    "Marco",
    "Nia",
    "Omar",
    "Paz",
    "Quinn",
    "Rosa",
    "Søren",
    "Tariq",
    "Uma",
    "Vic",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoë",
    "José",
    "Łucja",
    "Renée",
    "Aiko",
]
LAST_NAMES = [
    "Abbott",
    "Brandt",
    "Castillo",
    "Dubois",
    "Eze",
    "Fischer",
    "García",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "López",
    "Müller",
    "Nakamura",
    "O'Neill",
    "Park",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Úlfsson",
    "Varga",
    "Wójcik",
    "Yilmaz",
]
GROUP_TITLES = [
    "weekend crew",
    "fam 🏡",
    "book club 📚",
    "house 4B",
    "trip planning ✈️",
    "soccer tuesdays ⚽",
    "café shift swaps",
    "bday surprise 🎂",
    "ride club 🚲",
    "roommates",
    "the jalapeño fan club 🌶️",
    "board games",
]
# Tails and openers in Sam's register; with a second line and stretched letters they make
# nearly every generated text distinct.
OPENERS = ["ok", "wait", "lol", "ya", "hm", "omg", "also", "btw", "ok ok", "honestly", "ngl"]
REACTIONS = ["❤", "😂", "😮", "😢", "👍", "😭", "🔥"]
TAILS = [
    "lol",
    "ya",
    "ok ok",
    "!!",
    "😭",
    "🙃",
    "haha",
    "tbh",
    "?",
    "lmao",
    "❤",
    "for real",
    "idk",
    "🙏",
    "😂",
    "!!!",
    "jk",
    "i think",
    "maybe",
    "right?",
]


@dataclass
class Thread:
    section: str
    folder: str
    title: str
    others: list[str]
    is_group: bool
    size: int


class TextSampler:
    """Message texts drawn from the sample dialogues, already mojibake-encoded (the encoding
    of a concatenation is the concatenation of encodings, so variants are built encoded)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.owner_lines = [dyi.mojibake(t) for _, who, t in _all_lines() if who == SELF]
        self.friend_lines = [dyi.mojibake(t) for _, who, t in _all_lines() if who != SELF]
        self.openers = [dyi.mojibake(t) for t in OPENERS]
        self.tails = [dyi.mojibake(t) for t in TAILS]
        self.reactions = [dyi.mojibake(t) for t in REACTIONS]

    def text(self, from_owner: bool) -> str:
        rng = self.rng
        pool = self.owner_lines if from_owner else self.friend_lines
        text = rng.choice(pool)
        varied = False
        if rng.random() < 0.5:
            text, varied = f"{text} {rng.choice(pool)}", True
        if rng.random() < 0.3:
            text, varied = f"{rng.choice(self.openers)} {text}", True
        if not varied or rng.random() < 0.4:
            text = f"{text} {rng.choice(self.tails)}"
        if rng.random() < 0.7:
            text = _typo(rng, text)
        if text[-1].isascii() and text[-1].isalpha() and rng.random() < 0.4:
            text += text[-1] * rng.randint(1, 4)  # "ok" -> "okkk", as people stretch words
        return text


def _typo(rng: random.Random, text: str) -> str:
    """Two neighbouring ASCII letters swapped ("teh"), at a random place, if there is one."""
    at = rng.randrange(len(text) - 1) if len(text) > 1 else 0
    first, second = text[at : at + 1], text[at + 1 : at + 2]
    pair = first + second
    if first != second and pair.isascii() and pair.isalpha():
        return text[:at] + second + first + text[at + 2 :]
    return text


def _all_lines():
    for conversation in CONVERSATIONS:
        yield from conversation["lines"]


def plan_threads(rng: random.Random, messages: int, threads: int) -> list[Thread]:
    """Thread sizes follow a long tail (a few huge chats, many small), summing to `messages`."""
    weights = [1 / (rank + 1) ** 0.9 for rank in range(threads)]
    sizes = [max(1, int(messages * w / sum(weights))) for w in weights]
    sizes[0] += messages - sum(sizes)
    if sizes[0] < 1:
        raise SystemExit(f"--messages {messages} is too few for --threads {threads}")
    plan, used_folders = [], set()
    for number, size in enumerate(sizes):
        is_group = number > 0 and rng.random() < GROUP_SHARE
        if is_group:
            others = rng.sample(_name_pool(), rng.randint(2, 6))
            title = rng.choice(GROUP_TITLES)
        else:
            others = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"]
            title = others[0]
        folder = _folder_name(rng, title, used_folders)
        section = "archived_threads" if rng.random() < ARCHIVED_SHARE else "inbox"
        plan.append(Thread(section, folder, title, others, is_group, size))
    return plan


def _name_pool() -> list[str]:
    return [f"{first} {last}" for first in FIRST_NAMES[:12] for last in LAST_NAMES[:6]]


def _folder_name(rng: random.Random, title: str, used: set[str]) -> str:
    # Facebook's slug keeps the ASCII letters and digits of the title, lower-cased.
    slug = "".join(ch for ch in title.lower() if ch.isascii() and ch.isalnum()) or "facebookuser"
    while True:
        folder = f"{slug}_{rng.randrange(10**15, 10**16)}"
        if folder not in used:
            used.add(folder)
            return folder


def thread_messages(rng: random.Random, texts: TextSampler, thread: Thread, media: dict[str, bytes]) -> list[dict]:
    """The thread's messages, oldest first: sessions of quick bubbles hours or days apart."""
    members = thread.others + [OWNER]
    owner_mojibake, names = dyi.mojibake(OWNER), [dyi.mojibake(name) for name in members]
    clock, sender = 0, names[0]
    messages = []
    for _ in range(thread.size):
        if rng.random() < NEW_SESSION_CHANCE:
            clock += rng.randint(2 * 3_600_000, 3 * 86_400_000)
        else:
            clock += rng.randint(3_000, 240_000)
        if rng.random() >= SAME_SENDER_CHANCE:
            sender = _next_sender(rng, names, owner_mojibake, sender, thread.is_group)
        if rng.random() < EVENT_SHARE:
            messages.append(_event(rng, thread, sender, clock, media))
            continue
        reactions = None
        if rng.random() < REACTION_SHARE:
            reactor = rng.choice([name for name in names if name != sender])
            reactions = [(reactor, rng.choice(texts.reactions))]
        messages.append(dyi.text_message(sender, clock, texts.text(sender == owner_mojibake), reactions))
    offset = END_MS - rng.randint(0, 30 * 86_400_000) - clock
    for message in messages:
        message["timestamp_ms"] += offset
        for photo in message.get("photos", ()):
            photo["creation_timestamp"] = message["timestamp_ms"] // 1000
    return messages


def _next_sender(rng: random.Random, names: list[str], owner: str, current: str, is_group: bool) -> str:
    if not is_group:
        return names[0] if current == owner else owner
    if current != owner and rng.random() < 0.45:
        return owner
    return rng.choice([name for name in names if name != current])


def _event(rng: random.Random, thread: Thread, sender: str, clock: int, media: dict[str, bytes]) -> dict:
    kind = rng.choices(list(EVENT_WEIGHTS), weights=list(EVENT_WEIGHTS.values()))[0]
    if kind == "photo":
        uri = f"{dyi.MESSAGES_ROOT}/{thread.section}/{thread.folder}/photos/"
        uri += f"{rng.randrange(10**14, 10**15)}_{rng.randrange(10**15, 10**16)}_n.jpg"
        media[uri] = PLACEHOLDER_JPEG
        return dyi.photo_message(sender, clock, uri)
    if kind == "sticker":
        uri = f"{dyi.STICKERS_DIR}/{rng.choice(STICKER_IDS)}"
        media[uri] = PLACEHOLDER_PNG
        return dyi.sticker_message(sender, clock, uri)
    if kind == "share":
        return dyi.share_message(sender, clock, f"https://example.com/post/{rng.randrange(10**9)}")
    if kind == "call":
        return dyi.missed_call_message(sender, clock)
    return dyi.unsent_message(sender, clock)


class ExportWriter:
    """Writes export files into a folder, or into one zip when as_zip."""

    def __init__(self, out_dir: Path, as_zip: bool) -> None:
        self.out_dir = out_dir
        self.archive = None
        if as_zip:
            self.archive = zipfile.ZipFile(
                out_dir / ZIP_NAME, "w", zipfile.ZIP_DEFLATED, compresslevel=1
            )  # level 1: fast, still ~10x smaller

    def write(self, relative_path: str, data: bytes) -> None:
        if self.archive is not None:
            info = zipfile.ZipInfo(relative_path, (2025, 7, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            self.archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
            return
        path = self.out_dir / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def close(self) -> Path:
        if self.archive is not None:
            self.archive.close()
            return self.out_dir / ZIP_NAME
        return self.out_dir


def generate(out_dir: Path, messages: int, threads: int, seed: int = 0, as_zip: bool = False) -> Path:
    """Write the export; returns its root folder, or the zip when as_zip."""
    if messages < 1 or threads < 1:
        raise SystemExit("--messages and --threads must be at least 1")
    rng = random.Random(seed)
    plan = plan_threads(rng, messages, threads)  # before touching the disk: it checks the sizes
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise SystemExit(f"{out_dir}: not empty; give a new or empty folder")
    texts = TextSampler(rng)
    writer = ExportWriter(out_dir, as_zip)
    media: dict[str, bytes] = {}
    for thread in plan:
        thread_list = thread_messages(rng, texts, thread, media)
        participants = [dyi.mojibake(name) for name in thread.others + [OWNER]]
        documents = dyi.thread_documents(
            thread.section, thread.folder, dyi.mojibake(thread.title), participants, thread_list, thread.is_group
        )
        for path, document in documents:
            writer.write(path, dyi.dump_document(document))
    for path in sorted(media):
        writer.write(path, media[path])
    return writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="new or empty folder to write into")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in all")
    parser.add_argument("--threads", type=int, default=200, help="number of chats")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zip", action="store_true", help=f"write one {ZIP_NAME} instead")
    args = parser.parse_args(argv)
    root = generate(args.out_dir, args.messages, args.threads, args.seed, args.zip)
    print(f"wrote {args.messages:,} messages in {args.threads} threads to {root}")


if __name__ == "__main__":
    main()
