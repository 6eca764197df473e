"""A small hand-written chat history for the memory tests: six threads, one of them held out."""

from __future__ import annotations

from pathlib import Path

from training.conversation import Conversation, ImportResult, Message

ME = "Sam Rivera"
THREADS = {  # thread title -> (is group, [(sender, text)]) : every thread is one conversation
    "Maya Chen": (
        False,
        [
            ("Maya Chen", "are you free thursday afternoon?"),
            (ME, "no class thursday afternoon, come by the café"),
            ("Maya Chen", "ok see you at 3"),
            (ME, "bring the jalapeño chips"),
        ],
    ),
    "Jordan Okafor": (
        False,
        [
            ("Jordan Okafor", "did you feed the cat?"),
            (ME, "twice lol he lies"),
            ("Jordan Okafor", "what's for dinner"),
            (ME, "leftover pad thai"),
        ],
    ),
    "Elena Rivera": (
        False,
        [
            ("Elena Rivera", "call me when you get home mijo"),
            (ME, "ok mom, home by 9"),
            ("Elena Rivera", "did you eat"),
            (ME, "yes i ate, tacos"),
        ],
    ),
    "Priya Nair": (
        False,
        [
            ("Priya Nair", "which bike should I buy"),
            (ME, "a used steel frame, always"),
            ("Priya Nair", "is the shop open sunday"),
            (ME, "sunday 10 to 4"),
        ],
    ),
    "weekend crew": (
        True,
        [
            ("Ana Park", "hike saturday?"),
            ("Ben Ito", "I'm in"),
            (ME, "only if there are donuts after"),
            ("Ben Ito", "who's driving"),
            (ME, "i'll bike there, meet at the trailhead"),
        ],
    ),
    "Theo Brandt": (
        False,
        [
            ("Theo Brandt", "still riding in the rain?"),
            (ME, "every day, portland is wet"),
            ("Theo Brandt", "how's the café"),
            (ME, "busy, new espresso machine"),
        ],
    ),
}


def export() -> ImportResult:
    conversations = []
    for number, (title, (group, lines)) in enumerate(THREADS.items()):
        start = 1_700_000_000 + number * 86_400
        messages = [Message(sender, text, start + 60 * index) for index, (sender, text) in enumerate(lines)]
        conversations.append(Conversation(f"inbox/thread_{number}", title, messages, is_group=group))
    return ImportResult(conversations=conversations)


def prepared_data(folder: Path) -> Path:
    """The history prepared into folder/sam.jsonl (Priya's conversation held out), with its memory."""
    from training.chat.memory import remember_prepared
    from training.data.persona import ShapingOptions, prepare, save

    prepared = prepare(export(), ShapingOptions(me=ME, val_fraction=0.2, system_prompt="You are {me}."))
    train_file, _ = save(prepared, Path(folder) / "sam.jsonl")
    remember_prepared(prepared, train_file)
    return train_file
