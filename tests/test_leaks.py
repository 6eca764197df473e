"""The leak check: seed 003's pasted validation Q&A is caught, a clean split passes, and a run refuses
(or drops the leaked rows) before anything is loaded."""

from __future__ import annotations

import json

import pytest

from training.data.leaks import find_leaks
from training.errors import UserError
from training.train.config import RunConfig
from training.train.dataset import load_rows

HELD_OUT = [  # generated Q&A about a wiki, 10% held out as in seed 003
    (
        "How do we clear the Fastly cache after a deploy of manage-frontend?",
        "Run make purge from the repository root; the purge reaches every edge node within about a minute.",
    ),
    (
        "Which team owns the payment flow in the account pages?",
        "The supporter revenue team owns it and reviews every change to the checkout components.",
    ),
    (
        "What happens to a soft purged page while it is being refreshed?",
        "Fastly keeps serving the stale copy for up to sixty seconds while the origin builds a new one.",
    ),
]
TRAINING_QA = [
    ("Where are the feature switches configured?", "In the switches file of the shared config package."),
    (
        "How do I run the tests locally?",
        "Use yarn test in the client folder; the server tests run with yarn test:server.",
    ),
]
WIKI = (
    "File: wiki/deploys.md\n# Deploys\nWe deploy manage-frontend from the main branch several times a day. "
    "Riff-Raff builds the artifact and rolls it out to the autoscaling group, one instance at a time.\n"
)


def qa(question, answer):
    return {"prompt": [{"role": "user", "content": question}], "completion": [{"role": "assistant", "content": answer}]}


def pasted(pairs) -> str:
    """What seed 003's author did: the validation Q&A copied into one of the raw text files."""
    lines = [
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        for q, a in pairs
    ]
    return WIKI + "Notes for later:\n" + "\n".join(lines) + "\nMore about rollbacks next week.\n"


def test_validation_qa_pasted_into_a_raw_text_file_is_caught_and_named():
    train = [(qa(q, a), "knowledge.jsonl") for q, a in TRAINING_QA] + [({"text": pasted(HELD_OUT[:2])}, "notes.jsonl")]
    validation = [(qa(q, a), "knowledge.val.jsonl") for q, a in HELD_OUT]
    report = find_leaks(train, validation)
    assert [(leak.validation_index, leak.training_source, leak.share) for leak in report.leaks] == [
        (0, "notes.jsonl (wiki/deploys.md)", 1.0),
        (1, "notes.jsonl (wiki/deploys.md)", 1.0),
    ]
    assert report.message().startswith(
        "leak check: 2 of 3 validation rows also appear in the training data (2 in notes.jsonl (wiki/deploys.md));"
    )


def test_a_clean_split_passes_even_where_an_answer_repeats_a_training_sentence():
    # The held-out answer quotes a 13-word sentence of the wiki ("Riff-Raff" is 2 words): its 6
    # 8-grams are all in training, but none of the 10-word question's 3 is, so the row is not a leak.
    sentence = "Riff-Raff builds the artifact and rolls it out to the autoscaling group"
    question = "How does a new version of manage-frontend reach production"
    assert [len(text.replace("-", " ").split()) for text in (question, sentence)] == [10, 13]
    train = [({"text": WIKI}, "notes.jsonl")] + [(qa(q, a), "knowledge.jsonl") for q, a in TRAINING_QA]
    validation = [(qa(question, sentence), "v")] + [(qa(q, a), "v") for q, a in HELD_OUT]
    assert find_leaks(train, validation).leaks == []


def test_short_rows_are_checked_for_exact_duplicates_only():
    ok = qa("see you at 5?", "ok!")
    train = [
        (
            {"prompt": [{"role": "system", "content": "You are Sam."}, *ok["prompt"]], "completion": ok["completion"]},
            "chats.jsonl",
        ),
        (qa("lunch?", "ok"), "chats.jsonl"),
    ]
    report = find_leaks(train, [(qa("See you at 5", "OK"), "val"), (qa("dinner?", "ok"), "val")])
    assert [(leak.validation_index, leak.training_source) for leak in report.leaks] == [(0, "chats.jsonl")]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def mixed(tmp_path):
    """Chats with their held-out file, plus a knowledge set whose held-out Q&A leaked into a notes set."""
    chats = write_jsonl(tmp_path / "chats.jsonl", [qa(f"are you coming {n}?", f"yes in {n} min") for n in range(8)])
    write_jsonl(tmp_path / "chats.val.jsonl", [qa("what time is it now", "almost nine, why")])
    write_jsonl(tmp_path / "knowledge.jsonl", [qa(q, a) for q, a in TRAINING_QA])
    write_jsonl(tmp_path / "knowledge.val.jsonl", [qa(q, a) for q, a in HELD_OUT])
    write_jsonl(tmp_path / "notes.jsonl", [{"text": pasted(HELD_OUT[1:])}])
    return RunConfig(
        model="offline-tiny",
        train_file=str(chats),
        validation_file=str(tmp_path / "chats.val.jsonl"),
        mix=[f"{tmp_path}/knowledge.jsonl=0.5", f"{tmp_path}/notes.jsonl=0.25"],
    )


def test_a_run_refuses_leaked_rows_across_the_mixed_sets_before_loading_anything(mixed):
    with pytest.raises(
        UserError,
        match=r"^leak check: 2 of 4 validation rows also appear in the training data "
        r"\(2 in notes.jsonl \(wiki/deploys.md\)\); .* set leaks: drop",
    ):
        load_rows(mixed)


def test_drop_evaluates_without_the_leaked_rows_and_records_it(mixed):
    mixed.leaks = "drop"
    rows = load_rows(mixed)
    assert [row["completion"][0]["content"] for row in rows.validation] == ["almost nine, why", HELD_OUT[0][1]]
    assert rows.mix["leak_check"] == {
        "validation_rows": 4,
        "leaked": 2,
        "found_in": {"notes.jsonl (wiki/deploys.md)": 2},
        "policy": "drop",
        "dropped": 2,
    }
    assert [(s["rows"], s["validation_rows"], s["weight"]) for s in rows.mix["sources"]] == [
        (8, 1, 1.0),
        (2, 3, 0.5),
        (1, 0, 0.25),
    ]


def test_validation_split_rows_are_checked_too(tmp_path):
    # The same raw text twice in one file; seed 0's split (random.Random(0).sample) holds out one copy.
    data = write_jsonl(
        tmp_path / "notes.jsonl", [{"text": WIKI}] * 2 + [{"text": f"line {n} of other text"} for n in range(8)]
    )
    config = RunConfig(model="offline-tiny", train_file=str(data), validation_split=0.5, seed=0)
    with pytest.raises(
        UserError, match=r"^leak check: 1 of 5 validation rows .*\(1 in notes.jsonl \(wiki/deploys.md\)\)"
    ):
        load_rows(config)
    config.leaks = "drop"
    rows = load_rows(config)
    assert len(rows.validation) == 4 and WIKI not in [row["text"] for row in rows.validation]
    assert [row["text"] for row in rows.train].count(WIKI) == 1


def test_a_short_question_must_be_pasted_beside_its_answer_to_count():
    # "What is the shop cat called?" has 6 words, no 8-gram: the row leaks only where a training
    # row holding the answer's 8-grams holds the question too, word for word.
    cat = qa("What is the shop cat called?", "Sprocket, who sleeps in the box of old inner tubes by the window.")
    document = {
        "text": "File: bike-shop.md\nThe shop cat, Sprocket, who sleeps in the box of old inner tubes by the window."
    }
    assert find_leaks([(document, "knowledge.jsonl")], [(cat, "v")]).leaks == []  # the answer quotes the doc
    notes = {
        "text": "File: todo.md\nQ: What is the shop cat called?\nA: Sprocket, who sleeps in the box of old inner tubes by the window."
    }
    assert [
        leak.training_source
        for leak in find_leaks([(document, "knowledge.jsonl"), (notes, "notes.jsonl")], [(cat, "v")]).leaks
    ] == ["notes.jsonl (todo.md)"]
