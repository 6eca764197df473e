"""Turn one speaker's conversations in a real human chat corpus into a WhatsApp export talklike imports.

The corpus is the BYU Chit-Chat Challenge data set (MIT), shipped by PyPI's `chitchat-dataset==0.9.0`
as `chitchat_dataset/dataset.json`: conversation uuid -> {"messages": [[{text, timestamp, sender}, ...
one turn], ...], ...}. Real people texting strangers about a prompt, so each speaker has a voice of
their own. Nothing of it is committed here; this script fetches the wheel with pip (PyPI only) when
the package is not installed, and writes a zip of Android-style `WhatsApp Chat with X.txt` files,
one per conversation of the chosen speaker, named by the first 8 characters of sender uuids.

    python bench/chitchat_export.py --speaker 549cc1d1 --conversations 400 --out /tmp/chitchat.zip
    python -m training prepare /tmp/chitchat.zip --me 549cc1d1 --out /tmp/chitchat.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path

PACKAGE = "chitchat-dataset==0.9.0"


def corpus(path: str | None = None) -> dict:
    """dataset.json, from `path`, the installed package, or the wheel downloaded into a temp folder."""
    if path:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        import chitchat_dataset

        return json.loads((Path(chitchat_dataset.__file__).parent / "dataset.json").read_text(encoding="utf-8"))
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", folder], check=True)
        wheel = next(Path(folder).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            return json.loads(archive.read("chitchat_dataset/dataset.json"))


def short(sender: str) -> str:
    return sender[:8]


def speakers(data: dict) -> Counter:
    """Reply turns per speaker (turns that answer someone else), in conversations of two people or more."""
    counts: Counter = Counter()
    for conversation in data.values():
        turns = [turn for turn in conversation["messages"] if turn]
        if len({turn[0]["sender"] for turn in turns}) < 2:
            continue
        counts.update(short(turn[0]["sender"]) for turn in turns[1:])
    return counts


def whatsapp_text(conversation: dict) -> str:
    """Android's export grammar: `18/03/2022, 14:56 - Name: text`, one message per line."""
    lines = []
    for turn in conversation["messages"]:
        for message in turn:
            stamp = datetime.strptime(message["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
            text = message["text"].replace("\r", "")
            lines.append(f"{stamp:%d/%m/%Y, %H:%M} - {short(message['sender'])}: {text}")
    return "\n".join(lines) + "\n"


def export(data: dict, speaker: str, count: int | None, seed: int, out: Path) -> dict:
    """Write the zip; returns what went in (conversations, messages, the speaker's turns)."""
    chosen = []
    for uuid, conversation in sorted(data.items()):
        senders = {short(m["sender"]) for turn in conversation["messages"] for m in turn}
        if speaker in senders and len(senders) >= 2:
            chosen.append((uuid, conversation))
    if not chosen:
        raise SystemExit(f"--speaker {speaker}: no conversation with another person; see --list")
    if count is not None and count < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, count))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for uuid, conversation in chosen:
            other = next(
                short(m["sender"]) for turn in conversation["messages"] for m in turn if short(m["sender"]) != speaker
            )
            archive.writestr(f"WhatsApp Chat with {other} ({uuid[:8]}).txt", whatsapp_text(conversation))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    messages = sum(len(turn) for _, c in chosen for turn in c["messages"])
    mine = sum(1 for _, c in chosen for turn in c["messages"][1:] if turn and short(turn[0]["sender"]) == speaker)
    return {"conversations": len(chosen), "messages": messages, "speaker_reply_turns": mine, "out": str(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="dataset.json (default: the installed package, else pip download)")
    parser.add_argument("--list", action="store_true", help="print the top speakers by reply turns and stop")
    parser.add_argument("--speaker", default="549cc1d1", help="first 8 characters of the sender uuid")
    parser.add_argument("--conversations", type=int, help="at most this many of the speaker's conversations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("chitchat_export.zip"))
    args = parser.parse_args(argv)
    data = corpus(args.dataset)
    if args.list:
        for name, turns in speakers(data).most_common(10):
            print(f"{turns:>7}  {name}")
        return
    print(json.dumps(export(data, args.speaker, args.conversations, args.seed, args.out)))


if __name__ == "__main__":
    main()
