"""Persona shaping: turns, sessions, context, filters, split. Built from Conversations directly."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.conversation import MAX_MESSAGE_CHARS, Conversation, Document, ImportResult, Message
from training.data.manifest import manifest_path, read_manifest
from training.data.persona import (
    participants,
    prepare,
    save,
    split_by_conversation,
    split_sessions,
    to_dataset,
    validation_path,
)
from training.data.shaping import ShapingOptions
from training.errors import UserError
from training.prompting import Turn, merge_turns, message_turns

MIN = 60.0


def chat(*lines, group=False, id="t1", title="Maya", start=0.0, system=None):
    """lines: (minute, sender, text)."""
    messages = [Message(sender, text, start + minute * MIN) for minute, sender, text in lines]
    return Conversation(id=id, title=title, messages=messages, is_group=group, system=system)


def shape(*conversations, **options):
    options.setdefault("val_fraction", 0.0)
    options.setdefault("me", "Sam")
    options.setdefault("system_prompt", "")  # the rows without the default persona prompt, to keep them short
    return prepare(ImportResult(conversations=list(conversations)), ShapingOptions(**options))


def test_consecutive_messages_form_one_turn_joined_by_the_separator():
    convo = chat((0, "Maya", "hey"), (1, "Maya", "u up?"), (2, "Sam", "ya"), (2, "Sam", "whats up"))
    newline = shape(convo).train
    pipe = shape(convo, separator="|").train
    assert newline == [
        {
            "prompt": [{"role": "user", "content": "hey\nu up?"}],
            "completion": [{"role": "assistant", "content": "ya\nwhats up"}],
        }
    ]
    assert pipe[0]["prompt"][0]["content"] == "hey|u up?"
    assert pipe[0]["completion"][0]["content"] == "ya|whats up"


def test_one_example_per_reply_of_mine_with_earlier_turns_as_context():
    convo = chat((0, "Maya", "a"), (1, "Sam", "b"), (2, "Maya", "c"), (3, "Sam", "d"))
    rows = shape(convo).train
    assert [r["completion"][0]["content"] for r in rows] == ["b", "d"]
    assert rows[1]["prompt"] == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_a_long_silence_starts_a_new_conversation():
    convo = chat((0, "Maya", "a"), (1, "Sam", "b"), (200, "Maya", "c"), (201, "Sam", "d"))
    rows = shape(convo, gap_minutes=60).train
    assert rows[1]["prompt"] == [{"role": "user", "content": "c"}]
    assert shape(convo, gap_minutes=300).train[1]["prompt"][0]["content"] == "a"


def test_my_opening_message_is_not_an_example_and_prompts_start_with_the_user():
    convo = chat((0, "Sam", "yo"), (1, "Maya", "hi"), (2, "Sam", "sup"), (3, "Maya", "x"), (4, "Sam", "y"))
    prepared = shape(convo, context_turns=2)
    assert prepared.summary["dropped"]["my turn opens the conversation"] == 1
    # context of 2 would start at my "sup": trimmed so the user speaks first
    assert prepared.train[1]["prompt"] == [{"role": "user", "content": "x"}]
    assert all(r["prompt"][0]["role"] == "user" for r in prepared.train)


def test_group_chat_turns_by_different_people_merge_with_names():
    convo = chat((0, "Maya", "climb sat?"), (1, "Priya", "im in"), (2, "Sam", "same"), group=True)
    rows = shape(convo).train
    assert rows[0]["prompt"] == [{"role": "user", "content": "Maya: climb sat?\nPriya: im in"}]
    plain = shape(convo, name_prefix_in_groups=False).train
    assert plain[0]["prompt"][0]["content"] == "climb sat?\nim in"


def test_system_prompt_names_the_persona_and_data_set_system_wins():
    convo = chat((0, "Maya", "a"), (1, "Sam", "b"))
    rows = shape(convo, system_prompt="You are {me}.").train
    assert rows[0]["prompt"][0] == {"role": "system", "content": "You are Sam."}
    own = chat((0, "user", "a"), (1, "assistant", "b"), system="Be Vader.")
    rows = shape(own, me="assistant", system_prompt="You are {me}.").train
    assert rows[0]["prompt"][0] == {"role": "system", "content": "Be Vader."}


def test_filters_threads_groups_dates_lengths_and_duplicates():
    maya = chat((0, "Maya", "a"), (1, "Sam", "ok"), (2, "Maya", "b"), (3, "Sam", "a much longer reply"))
    group = chat((0, "Leo", "a"), (1, "Sam", "ok"), group=True, id="g", title="crew")
    p = shape(maya, group, exclude_threads=["crew"])
    assert p.summary["dropped"]["excluded thread"] == 2
    p = shape(maya, group, include_threads=["crew"])
    assert [r["completion"][0]["content"] for r in p.train] == ["ok"]
    p = shape(maya, group, include_groups=False)
    assert p.summary["dropped"]["group chat excluded"] == 2
    p = shape(maya, min_chars=3)
    assert p.summary["dropped"]["reply too short"] == 1
    p = shape(maya, max_chars=3)
    assert p.summary["dropped"]["reply too long"] == 1
    p = shape(maya, start=1.5 * MIN)
    assert p.summary["dropped"]["outside date range"] == 2
    twice = shape(maya, group, name_prefix_in_groups=False)  # "a" -> "ok" in both threads
    assert twice.summary["dropped"]["duplicate example"] == 1
    assert len(shape(maya, group, dedup=False, name_prefix_in_groups=False).train) == 3


def test_pii_is_scrubbed_in_prompts_and_replies_with_counts():
    convo = chat((0, "Maya", "mail me maya@example.com"), (1, "Sam", "call +1 503 555 0142"))
    p = shape(convo, scrub_pii=True)
    assert p.train[0]["prompt"][0]["content"] == "mail me <email>"
    assert p.train[0]["completion"][0]["content"] == "call <phone number>"
    assert p.summary["pii_replaced"] == {"email": 1, "phone": 1}


def test_split_is_deterministic_and_never_splits_a_conversation():
    convos = [
        chat((0, "F", "q"), (1, "Sam", f"r{i}"), (2, "F", "q2"), (3, "Sam", f"s{i}"), id=f"t{i}") for i in range(40)
    ]
    a = shape(*convos, val_fraction=0.1)
    b = shape(*reversed(convos), val_fraction=0.1)
    assert len(a.validation) == 8  # 4 of 40 conversations, 2 examples each

    def key(rows):
        return sorted(r["completion"][0]["content"] for r in rows)

    assert key(a.validation) == key(b.validation)
    for i in range(40):
        assert (f"r{i}" in key(a.validation)) == (f"s{i}" in key(a.validation))


def test_small_inputs_still_get_a_validation_conversation():
    train, validation = split_by_conversation([("a", {"x": 1}), ("b", {"x": 2})], 0.1)
    assert len(train) == 1 and len(validation) == 1
    assert split_by_conversation([("a", {"x": 1})], 0.1) == ([{"x": 1}], [])


def test_unknown_me_names_close_matches_and_participants():
    convo = chat((0, "Maya Chen", "a"), (1, "Sam Rivera", "b"), (2, "Sam Rivera", "c"))
    with pytest.raises(UserError, match="did you mean 'Sam Rivera'.*Sam Rivera \\(2\\)"):
        shape(convo, me="Sam Riviera")
    assert participants(ImportResult(conversations=[convo])) == [("Sam Rivera", 2), ("Maya Chen", 1)]


def test_no_reply_at_all_is_a_clear_error():
    with pytest.raises(UserError, match="never replies"):
        shape(chat((0, "Sam", "hello?")))


def test_documents_become_text_rows():
    result = ImportResult(documents=[Document("notes.md#0", "File: notes.md\nhello")])
    p = prepare(result, ShapingOptions(me="anyone", val_fraction=0))
    assert p.train == [{"text": "File: notes.md\nhello"}]


def test_save_writes_train_and_validation_atomically(tmp_path):
    convos = [chat((0, "F", "q"), (1, "Sam", f"r{i}"), id=f"t{i}") for i in range(10)]
    p = shape(*convos, val_fraction=0.2)
    train_path, val_path = save(p, tmp_path / "out" / "sam.jsonl")
    assert val_path == validation_path(train_path) == tmp_path / "out" / "sam.val.jsonl"
    assert len(train_path.read_text().splitlines()) == 8
    assert len(val_path.read_text().splitlines()) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sam.jsonl", "sam.persona.json", "sam.val.jsonl"]
    dataset = to_dataset(p.train)
    assert dataset.column_names == ["prompt", "completion"] and len(dataset) == 8


def test_the_manifest_beside_the_rows_says_what_made_them(tmp_path):
    convos = [chat((0, "F", "q"), (1, "Sam", f"r{i}"), (1, "Sam", "ok"), id=f"t{i}") for i in range(10)]
    options = dict(
        separator="|",
        context_turns=3,
        system_prompt="You are {me}.",
        gap_minutes=30.0,
        exclude_threads=["t9"],
        scrub_pii=True,
        val_fraction=0.2,
    )
    train_path, _ = save(shape(*convos, **options), tmp_path / "sam.jsonl")

    manifest = read_manifest(manifest_path(train_path))
    assert manifest_path(train_path) == tmp_path / "sam.persona.json" and manifest["format_version"] == 1
    assert manifest["prompt"] == {
        "separator": "|",
        "system_prompt": "You are Sam.",
        "context_turns": 3,
        "name_prefix_in_groups": True,
    }
    shaping = manifest["shaping"]
    assert (shaping["me"], shaping["system_prompt"], shaping["gap_minutes"]) == ("Sam", "You are {me}.", 30.0)
    assert (shaping["exclude_threads"], shaping["scrub_pii"], shaping["val_fraction"]) == (["t9"], True, 0.2)
    counts = manifest["counts"]
    assert (counts["threads"], counts["examples"], counts["train"] + counts["validation"]) == (10, 9, 9)
    assert counts["dropped"] == {"excluded thread": 3} and counts["pii_replaced"] == {}
    assert "participants" not in json.dumps(manifest)  # other people's names stay out of it
    assert json.loads(train_path.read_text().splitlines()[0])["completion"][0]["content"].endswith("|ok")


def test_a_failed_save_leaves_the_previous_files_untouched(tmp_path):
    first = shape(chat((0, "F", "q"), (1, "Sam", "r")))
    train_path, _ = save(first, tmp_path / "sam.jsonl")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = shape(chat((0, "F", "q"), (1, "Sam", "other")))
    broken.manifest["counts"]["when"] = {1, 2}  # not JSON: the manifest, written last, fails
    with pytest.raises(TypeError):
        save(broken, train_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_manifest_that_is_damaged_or_too_new_names_the_file(tmp_path):
    path = tmp_path / "sam.persona.json"
    assert read_manifest(path) is None  # data made before manifests, or by hand
    for text, expected in [
        ("{", "not a readable persona manifest"),
        ("[]", "no format_version"),
        ('{"format_version": 9}', "format_version 9 is newer"),
        ('{"format_version": 1, "prompt": {"context_turns": "six"}}', "prompt.context_turns: 'six'"),
    ]:
        path.write_text(text)
        with pytest.raises(UserError, match=f"^{path}: .*{expected}"):
            read_manifest(path)


def test_options_are_validated_with_field_names():
    with pytest.raises(UserError, match=r"^val_fraction: 1.5; expected a fraction in \[0, 1\)$"):
        ShapingOptions(me="x", val_fraction=1.5).validate()
    with pytest.raises(UserError, match="^context_turns: 0; expected a whole number >= 1$"):
        ShapingOptions(me="x", context_turns=0).validate()
    with pytest.raises(UserError, match="^gap_minutes: 0; expected a number > 0$"):
        ShapingOptions(me="x", gap_minutes=0).validate()


def test_guess_me_prefers_the_person_in_every_thread():
    a = chat((0, "Maya", "a"), (1, "Maya", "b"), (2, "Maya", "c"), (3, "Sam", "d"), id="a")
    b = chat((0, "Leo", "x"), (1, "Sam", "y"), id="b")
    from training.data.persona import guess_me

    assert guess_me(ImportResult(conversations=[a, b])) == "Sam"
    roles = chat((0, "user", "q"), (1, "assistant", "r"))
    assert guess_me(ImportResult(conversations=[roles])) == "assistant"


def test_a_long_run_of_their_messages_is_cut_to_its_end_in_every_prompt():
    # A group's 3,000 turns in a row (or one friend's flood) would otherwise be copied and
    # tokenized whole in every later prompt.
    flood = [(0, f"Friend {n % 2}", "x" * 100 + f" message {n}") for n in range(3000)]
    convo = chat(*flood, (1, "Sam", "finally"), (2, "Maya", "ok"), (3, "Sam", "bye"), group=True)
    rows = shape(convo).train
    assert [row["completion"][0]["content"] for row in rows] == ["finally", "bye"]
    context = rows[0]["prompt"][0]["content"]
    assert len(context) == MAX_MESSAGE_CHARS and context.endswith("Friend 1: " + "x" * 100 + " message 2999")
    assert all(len(message["content"]) <= MAX_MESSAGE_CHARS for row in rows for message in row["prompt"])


def test_a_reply_longer_than_the_bound_is_never_an_example_but_stays_context():
    long_reply = "y" * (MAX_MESSAGE_CHARS + 5)
    convo = chat((0, "Maya", "a"), (1, "Sam", long_reply), (2, "Maya", "b"), (3, "Sam", "c"))
    prepared = shape(convo, max_chars=MAX_MESSAGE_CHARS)
    assert [row["completion"][0]["content"] for row in prepared.train] == ["c"]
    assert prepared.summary["dropped"]["reply too long"] == 1
    assert prepared.train[0]["prompt"][1] == {"role": "assistant", "content": "y" * MAX_MESSAGE_CHARS}
    with pytest.raises(UserError, match="max_chars: 1,000,000 is above the 20,000 characters"):
        ShapingOptions(me="Sam", max_chars=1_000_000).validate()


# ---- the fast paths give what the plain definitions give --------------------------------------

SENDERS = st.sampled_from(["Sam", "Maya", "Leo", ""])
STAMPS = st.one_of(st.none(), st.floats(0, 10_000), st.integers(0, 10_000))
MESSAGE_LISTS = st.lists(st.builds(Message, SENDERS, st.text(max_size=3), STAMPS), max_size=30)


@given(MESSAGE_LISTS, st.sampled_from(["\n", "|", ""]))
@settings(max_examples=300, deadline=None)
def test_message_turns_are_merge_turns_over_the_messages(messages, separator):
    as_turns = [Turn(m.sender, m.text, m.sender == "Sam") for m in messages]
    assert message_turns(messages, "Sam", separator) == merge_turns(as_turns, separator)


def split_sessions_by_definition(messages, gap):
    """The rule, message by message: a silence longer than the gap since the last timed message."""
    sessions, last = [], None
    for message in messages:
        stamp = message.timestamp
        if sessions and stamp is not None and last is not None and stamp - last > gap:
            sessions.append([])
        if not sessions:
            sessions.append([])
        sessions[-1].append(message)
        last = stamp if stamp is not None else last
    return sessions


@given(MESSAGE_LISTS, st.sampled_from([0.0, 1.0, 60.0, 3600.0]))
@settings(max_examples=300, deadline=None)
def test_sessions_are_cut_where_the_silence_exceeds_the_gap(messages, gap):
    assert list(split_sessions(messages, gap)) == split_sessions_by_definition(messages, gap)


@given(MESSAGE_LISTS.filter(lambda ms: all(m.timestamp is not None for m in ms)), st.sampled_from([0.0, 60.0]))
@settings(max_examples=200, deadline=None)
def test_sessions_of_fully_timed_messages(messages, gap):
    assert list(split_sessions(messages, gap)) == split_sessions_by_definition(messages, gap)
