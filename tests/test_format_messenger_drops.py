"""Messenger / Instagram: what is not a typed message (media, calls, shares, unsent, the sentences
Facebook generates) is dropped and counted under its reason; real messages never are."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from tests.messenger_export import (
    ALICE,
    CARL,
    ME,
    mojibake,
    msg,
    parse,
    source,
    texts,
    thread,
)
from training.conversation import Drop
from training.data.formats import messenger_text


def test_every_non_text_event_is_dropped_and_counted_under_its_reason():
    media = [msg(ALICE, 1, **{key: [{"uri": "m"}]}) for key in ("photos", "videos", "audio_files", "gifs", "files")]
    events = [
        msg(ALICE, 2, "Alice Dvořák sent a photo.", photos=[{"uri": "p.jpg"}]),
        msg(ALICE, 3, sticker={"uri": "s.png"}),
        msg(ALICE, 4, "Alice called you.", type="Call", call_duration=65),
        msg(ME, 5, "You missed a call from Alice Dvořák.", call_duration=0, missed=True),  # 2024: no type
        msg(ALICE, 6, type="Share", share={"link": "https://example.com"}),
        msg(ALICE, 7, "Alice Dvořák sent a link.", type="Share", share={"link": "https://example.com"}),
        msg(ALICE, 8, "https://example.com", share={"link": "https://example.com"}),
        msg(ALICE, 9, is_unsent=True),
        msg(ALICE, 10, "hidden", is_geoblocked_for_viewer=True),
        msg(ALICE, 11, "Alice Dvořák added Carl Ng to the group.", type="Subscribe", users=[{"name": CARL}]),
        msg(ALICE, 12, "", type="Generic"),
        msg(ALICE, 13, "   \n "),
        msg(ALICE, 14),
    ]
    notices = [msg(ME, 20 + i, text) for i, text in enumerate(GENERATED_SENTENCES)]
    kept = [
        msg(ALICE, 40, "look at this https://example.com", type="Share", share={"link": "https://example.com"}),
        msg(ME, 41, "love it", reactions=[{"reaction": mojibake("❤"), "actor": ALICE}]),
        msg(ME, 42, "I left the keys at home, can you let me in?"),
    ]
    result = parse(source("inbox/a_1/message_1.json", thread(ALICE, [ALICE, ME], media + events + notices + kept)))

    assert texts(result.conversations[0]) == [
        "look at this https://example.com",
        "love it",
        "I left the keys at home, can you let me in?",
    ]
    assert result.dropped == Counter(
        {
            Drop.MEDIA: 6,
            Drop.STICKER: 1,
            Drop.CALL: 2,
            Drop.SHARE: 3,
            Drop.UNSENT: 2,
            Drop.SYSTEM: 1 + len(GENERATED_SENTENCES),
            Drop.EMPTY: 3,
        }
    )


GENERATED_SENTENCES = [
    "You are now connected on Messenger",
    "Say hi to your new Facebook friend, Alice.",
    "Alice Dvořák left the group.",
    "Sam Rivera named the group Climbers 🧗.",
    "Latent Vampirism changed the group photo.",
    "You set the nickname for Alice Dvořák to Al.",
    "Alice Dvořák set her own nickname to ally.",
    "Bob Chen added Carl Ng to the group.",
    "Bob Chen removed Carl Ng from the group.",
    "Alice Dvořák changed the theme to Love.",
    "Messages and calls are secured with end-to-end encryption. Only people in this chat can read them.",
    "Alice Dvořák reacted 😆 to your message",
    "Alice Dvořák started a video chat.",
    "Alice Dvořák missed a video call",
    "You unsent a message",
    "Bob Chen turned on disappearing messages.",
    "Bob Chen joined the video chat.",
]


@pytest.mark.parametrize("text", GENERATED_SENTENCES)
def test_generated_sentences_are_recognised(text):
    assert messenger_text.is_generated_notice(text)


@pytest.mark.parametrize(
    "text",
    [
        "I left the keys at home",
        "you named the dog what??",
        "ok",
        "sent it to you yesterday",
        'she said she wanted to "take a break"',
        "Reacted badly tbh",
        "Missed call sorry, driving",
        "wait Alice left the group?\nwhy",
        "hey " * 40 + "left the group",
        "we ended the call early lol",
        "She turned on the lights.",
        "I shared a post about it yesterday",
    ],
)
def test_real_messages_are_not_taken_for_generated_sentences(text):
    assert not messenger_text.is_generated_notice(text)


def test_event_word_search_finds_every_event_word_the_word_split_finds():
    """_EVENT_WORD runs first to skip the split for most texts; it may match more, never less."""
    rng = random.Random(5)
    vocabulary = [
        *messenger_text._EVENT_WORDS,
        "sett",
        "se",
        "unpin",
        "resent",
        "Named",
        "named,",
        "left.",
        "the",
        "group",
        "lol",
        "",
        "😆",
        "Alice",
        "a",
    ]
    for _ in range(20_000):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 24)))
        in_split = not messenger_text._EVENT_WORDS.isdisjoint(text.split(" ", 16)[1:16])
        assert messenger_text._EVENT_WORD.search(text) is not None or not in_split, text


def test_word_alternatives_match_exactly_the_words():
    words = ["set", "setup", "sent", "a", "ab"]
    pattern = re.compile(messenger_text._alternatives(words))
    for text in [*words, "se", "setu", "setups", "b", "", "sen"]:
        assert (pattern.fullmatch(text) is not None) == (text in words), text


def test_reactions_never_become_text():
    reactions = [{"reaction": mojibake(e), "actor": ALICE} for e in ("❤", "😆", "👍")]
    messages = [msg(ME, 1, "big news", reactions=reactions), msg(ALICE, 2, photos=[{"uri": "p"}], reactions=reactions)]
    result = parse(source("a/message_1.json", thread(ALICE, [ALICE, ME], messages)))
    assert texts(result.conversations[0]) == ["big news"]
