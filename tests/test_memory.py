"""Memory: the index of the person's past exchanges, recall, exclusions, and memories in the prompt."""

from __future__ import annotations

import json
import shutil

import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from tests.memory_data import ME, export
from training.chat.facts import MAX_FACTS, facts_path, read_facts, write_facts
from training.chat.memory import build_memory_for, is_pending, memory_path, open_memory, remember_prepared
from training.chat.memory_prompt import (
    MemorySettings,
    Remembered,
    memory_system_prompt,
    open_chat_memory,
)
from training.cli import build_parser, main
from training.data.persona import ShapingOptions, held_out_keys, prepare, save
from training.errors import UserError


@pytest.fixture
def data(isolated_data_dir):
    """A prepared data set (one of the six conversations held out) with its memory, as `prepare` saves it."""
    prepared = prepare(export(), ShapingOptions(me=ME, val_fraction=0.2, system_prompt="You are {me}."))
    train_file, _ = save(prepared, isolated_data_dir / "sam.jsonl")
    remember_prepared(prepared, train_file)
    return prepared, train_file


def test_prepare_records_the_threads_and_the_first_use_builds_the_index(data):
    prepared, train_file = data
    folder = memory_path(train_file)
    assert is_pending(folder) and not (folder / "vectors.npz").exists()  # prepare is not kept waiting
    index = open_memory(train_file)
    assert not is_pending(folder) and (folder / "vectors.npz").is_file()
    # What the JSONL rows cannot say came from prepare's record: every exchange knows its thread.
    assert len(index) == 10 and all(e.thread and e.title for e in index.exchanges)
    assert {e.title for e in index.exchanges} >= {"Maya Chen", "weekend crew"}
    remember_prepared(prepared, train_file)  # preparing again: the old index goes with the old rows
    assert is_pending(folder) and not (folder / "vectors.npz").exists()


def test_rows_edited_after_prepare_are_indexed_without_the_stale_thread_record(data):
    _, train_file = data
    row = {
        "prompt": [{"role": "user", "content": "fancy a swim?"}],
        "completion": [{"role": "assistant", "content": "always"}],
    }
    with open(train_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    index = open_memory(train_file)
    assert len(index) == 11 and index.recall("fancy a swim", k=1)[0].exchange.you == "always"
    assert not any(e.thread for e in index.exchanges)  # 11 rows, 10 recorded: the record no longer lines up


def test_two_first_uses_at_once_build_the_index_once(data, monkeypatch):
    import threading

    from training.chat import memory

    _, train_file = data
    builds, real_build = [], memory.build_memory_for
    monkeypatch.setattr(memory, "build_memory_for", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    opened: list = []
    threads = [threading.Thread(target=lambda: opened.append(len(open_memory(train_file)))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [10] * 4 and builds == [1]


def key_of(row: dict) -> tuple[str, str]:
    return row["prompt"][-1]["content"], row["completion"][0]["content"]


def test_recall_finds_the_exchange_that_answered_a_similar_message(data):
    _, train_file = data
    index = open_memory(train_file)
    best = index.recall("are you free on thursday?", k=2)[0]
    assert (best.exchange.them, best.exchange.you) == (
        "are you free thursday afternoon?",
        "no class thursday afternoon, come by the café",
    )
    assert best.exchange.title == "Maya Chen" and best.exchange.people == ("Maya Chen",)
    assert [r.exchange.you for r in index.recall("what's for dinner tonight", k=1)] == ["leftover pad thai"]
    assert index.recall("zzzz qqqq", k=3) == []  # nothing alike: no memory rather than a random one


def test_scores_are_tfidf_cosine_similarities_as_scikit_learn_computes_them(data):
    _, train_file = data
    index = open_memory(train_file)
    keys = [e.them for e in index.exchanges]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), sublinear_tf=True, lowercase=True)
    expected = cosine_similarity(
        vectorizer.fit_transform(keys), vectorizer.transform(["what are we eating for dinner?"])
    ).ravel()
    found = {r.exchange.them: r.score for r in index.recall("what are we eating for dinner?", k=len(keys))}
    assert found  # hashed features give the same numbers as the vocabulary (no collisions in 2^20 buckets here)
    for them, score in found.items():
        assert score == pytest.approx(expected[keys.index(them)], abs=1e-5)
    assert max(found, key=found.get) == "what's for dinner"


def test_held_out_conversations_never_enter_the_memory(data):
    prepared, train_file = data
    index = open_memory(train_file)
    held = {key_of(row) for row in prepared.validation}
    # The split holds Priya's conversation out (by hash of its id), and the index has every other row.
    assert held == {
        ("which bike should I buy", "a used steel frame, always"),
        ("is the shop open sunday", "sunday 10 to 4"),
    }
    assert held_out_keys([f"{c.id}#0" for c in export().conversations], 0.2) == {"inbox/thread_3#0"}
    assert len(index) == len(prepared.train) == 10
    for them, _ in held:  # even asked word for word, a held-out reply is never recalled
        assert all((r.exchange.them, r.exchange.you) not in held for r in index.recall(them, k=len(index)))


def test_excluded_threads_and_people_are_never_recalled(data):
    _, train_file = data
    index = open_memory(train_file)
    everything = index.recall(
        "are you free thursday afternoon? hike saturday? who is driving? did you feed the cat?", k=len(index)
    )
    assert {"Maya Chen", "weekend crew"} <= {r.exchange.title for r in everything}
    kept = index.recall(
        "are you free thursday afternoon? hike saturday? who is driving? did you feed the cat?",
        k=len(index),
        exclude_threads=["maya chen"],
        exclude_people=["Ben Ito"],
    )
    assert kept and all(r.exchange.title not in ("Maya Chen", "weekend crew") for r in kept)
    assert all("Ben Ito" not in r.exchange.people for r in kept)
    by_id = index.recall(
        "are you free thursday afternoon? did you eat?", k=len(index), exclude_threads=["inbox/thread_0"]
    )
    assert by_id and all(r.exchange.title != "Maya Chen" for r in by_id)  # a thread's id works as its title does


def test_rebuilding_from_the_jsonl_keeps_the_threads_prepare_recorded(data, capsys):
    prepared, train_file = data
    assert main(["memory", "build", str(train_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["exchanges"] == printed["with_threads"] == len(prepared.train)
    shutil.rmtree(memory_path(train_file))  # a data set from before memory: rebuilt without thread names
    assert main(["memory", "build", str(train_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["exchanges"] == len(prepared.train) and printed["with_threads"] == 0


def test_memory_build_errors_are_one_line(tmp_path, capsys):
    text_rows = tmp_path / "notes.jsonl"
    text_rows.write_text('{"text": "just notes"}\n', encoding="utf-8")
    assert main(["memory", "build", str(text_rows)]) == 2
    assert (
        capsys.readouterr().err
        == "error: notes.jsonl: no prompt/reply rows to remember (text rows have no exchanges)\n"
    )
    with pytest.raises(UserError, match="^sam.memory: no memory index; build it with `python -m training memory build"):
        open_memory(tmp_path / "sam.jsonl")
    (tmp_path / "bad.memory").mkdir()
    (tmp_path / "bad.memory" / "memory.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError, match="^bad.memory: unreadable memory index"):
        open_memory(tmp_path / "bad.memory")


def test_prepare_on_the_command_line_leaves_the_memory_to_its_first_use(isolated_data_dir, capsys):
    out = isolated_data_dir / "sam.jsonl"
    assert main(["prepare", "samples/sam_messenger_export.zip", "--me", ME, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["memory"] == str(memory_path(out)) and is_pending(memory_path(out))
    index = open_memory(out)
    assert len(index) == summary["train"] and all(e.thread for e in index.exchanges)


# ---- facts ------------------------------------------------------------------------------------------


def test_facts_are_read_written_and_bounded(tmp_path):
    path = facts_path(tmp_path / "sam.jsonl")
    assert path.name == "sam.facts.txt" and read_facts(path) == []
    write_facts(path, ["barista in Portland", "", "  rides a bike everywhere  "])
    path.write_text(path.read_text() + "# a comment\n", encoding="utf-8")
    assert read_facts(path) == ["barista in Portland", "rides a bike everywhere"]
    with pytest.raises(UserError, match=f"^sam.facts.txt: {MAX_FACTS + 1} facts; keep at most {MAX_FACTS}"):
        write_facts(path, [f"fact {n}" for n in range(MAX_FACTS + 1)])
    with pytest.raises(UserError, match="^facts: a fact of 201 characters"):
        open_chat_memory(tmp_path / "x.jsonl", MemorySettings(facts=("x" * 201,)))
    assert read_facts(path) == ["barista in Portland", "rides a bike everywhere"]  # a refused write changed nothing


def test_memory_block_is_compact_and_absent_without_memories(data):
    _, train_file = data
    recalled = tuple(open_memory(train_file).recall("are you free thursday afternoon?", k=1))
    text = memory_system_prompt("You are Sam.", Remembered(("barista in Portland",), recalled))
    assert text == (  # one line: a line per memory made replies come in more bubbles (memory_prompt.py)
        "You are Sam.\n\nFacts about you: barista in Portland. Things you said before: "
        "[them: are you free thursday afternoon? / you: no class thursday afternoon, come by the café]"
    )
    assert memory_system_prompt("You are Sam.", Remembered()) == "You are Sam."


def test_a_run_finds_its_data_sets_memory_and_facts(data, tmp_path):
    from training.train.config import RunConfig

    _, train_file = data
    write_facts(facts_path(train_file), ["barista in Portland"])
    run = tmp_path / "run"
    RunConfig(name="run", model="offline-tiny", train_file=str(train_file)).save(run / "config.yaml")
    memory = open_chat_memory(run, MemorySettings(k=2))
    assert memory.facts == ("barista in Portland",) and memory.index.path == memory_path(train_file)
    assert memory.remember("did you feed the cat").recalled[0].exchange.you == "twice lol he lies"
    shutil.rmtree(memory_path(train_file))
    with pytest.raises(UserError, match="^memory: sam.jsonl has no memory index beside it; build it with"):
        open_chat_memory(run)
    with pytest.raises(UserError, match="^memory k: 99; expected a whole number from 0 to 20"):
        open_chat_memory(train_file, MemorySettings(k=99))


def test_memory_flags_need_memory():
    args = build_parser().parse_args(["chat", "offline-tiny", "--prompt", "hi", "--memory-k", "3"])
    from training.cli.chat import memory_from_args

    with pytest.raises(UserError, match="^--memory-k: only with --memory$"):
        memory_from_args(args)
    args = build_parser().parse_args(["chat", "offline-tiny", "--prompt", "hi", "--memory"])
    with pytest.raises(UserError, match="^memory: offline-tiny is not a run or a data set"):
        memory_from_args(args)


# ---- memories in the prompt ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture
def run_with_memory(data, tiny_dir, tmp_path):
    """A finished run (a full model in final/) that trained on the data set, and its facts file."""
    from training.train.config import RunConfig

    _, train_file = data
    write_facts(facts_path(train_file), ["barista in Portland", "rides a bike everywhere"])
    run = tmp_path / "runs" / "sam"
    shutil.copytree(tiny_dir, run / "final")
    RunConfig(name="sam", model=str(tiny_dir), train_file=str(train_file), system_prompt="You are Sam Rivera.").save(
        run / "config.yaml"
    )
    return run


HISTORY = [
    {"role": "user", "content": "hey"},
    {"role": "assistant", "content": "hiii"},
    {"role": "user", "content": "long day at the café?"},
    {"role": "assistant", "content": "so long"},
]
ASKED = "are you free thursday afternoon? did you feed the cat? what's for dinner?"


def test_the_prompt_holds_the_facts_and_memories_recalled_for_the_message(run_with_memory):
    from training.chat.generate import build_prompt, load_chat_model

    model = load_chat_model(run_with_memory, device="cpu")
    memory = open_chat_memory(run_with_memory, MemorySettings(k=3))
    prompt = build_prompt(model, HISTORY, ASKED, 16, memory)
    recalled = [r.exchange.you for r in prompt.remembered.recalled]
    assert len(recalled) == 3 and set(recalled) == {
        "no class thursday afternoon, come by the café",
        "twice lol he lies",
        "leftover pad thai",
    }
    system = prompt.messages[0]["content"]
    assert system.startswith(
        "You are Sam Rivera.\n\nFacts about you: barista in Portland; rides a bike everywhere. Things you said before: ["
    )
    assert "[them: did you feed the cat? / you: twice lol he lies]" in system and system in prompt.text
    assert system.count("\n") == 2  # the memory block is one line
    assert prompt.messages[1:] == [*HISTORY, {"role": "user", "content": ASKED}]  # the whole history still fits
    plain = build_prompt(model, HISTORY, ASKED, 16)
    assert plain.remembered is None and plain.messages[0]["content"] == "You are Sam Rivera."


def test_memories_are_trimmed_to_the_context_after_the_history_least_relevant_first(run_with_memory):
    import dataclasses

    from training.chat.generate import build_prompt, load_chat_model

    model = load_chat_model(run_with_memory, device="cpu")
    memory = open_chat_memory(run_with_memory, MemorySettings(k=3))
    full = build_prompt(model, [], ASKED, 16, memory)
    bare = build_prompt(model, [], ASKED, 16, dataclasses.replace(memory, index=None, facts=()))
    ranked = full.remembered.recalled
    for size, kept in ((len(full.input_ids) + 16 - 1, 2), (len(bare.input_ids) + 16 + 12, 0)):
        small = dataclasses.replace(model, context_size=size)
        prompt = build_prompt(small, HISTORY, ASKED, 16, memory)
        assert len(prompt.input_ids) <= size - 16  # within max context minus the reply's budget
        assert prompt.messages[1:] == [{"role": "user", "content": ASKED}]  # the history went first
        assert prompt.remembered.recalled == ranked[:kept]  # then the least relevant memories
    tiny = dataclasses.replace(model, context_size=len(bare.input_ids) + 16)
    assert build_prompt(tiny, HISTORY, ASKED, 16, memory).remembered == Remembered()  # facts last


def test_chat_command_prints_the_memories_used_then_the_reply(run_with_memory, capsys):
    from training.chat.generate import DecodingSettings, load_chat_model, reply

    ask = ["chat", str(run_with_memory), "--prompt", "did you feed the cat?", "--memory", "--memory-k", "1"]
    assert main([*ask, "--print-prompt"]) == 0
    printed, said = capsys.readouterr()
    assert said.startswith("indexing your past replies in sam.memory (first use)...\n")  # prepare left it to now
    assert (
        "Facts about you: barista in Portland; rides a bike everywhere." in printed
        and "them: did you feed the cat? / you: twice lol he lies" in printed
    )
    assert "leftover pad thai" not in printed  # k=1
    shown = ["--show-memory", "--greedy", "--max-new-tokens", "8", "--facts", "/nonexistent/facts.txt"]
    assert main([*ask, *shown]) == 0
    out = capsys.readouterr().out
    memories, answer = out.split("\n\n", 1)
    assert memories.splitlines()[0] == "memories used:"
    assert len(memories.splitlines()) == 2  # one memory and no facts: --facts names a file that is absent
    assert "(Jordan Okafor) them: did you feed the cat? / you: twice lol he lies" in memories
    model = load_chat_model(run_with_memory, device="cpu")
    memory = open_chat_memory(run_with_memory, MemorySettings(k=1, facts=()))
    assert answer == reply(model, [], "did you feed the cat?", DecodingSettings(max_new_tokens=8), memory=memory) + "\n"


def test_an_export_never_carries_the_memory_or_the_facts(tmp_path_factory, tmp_path):
    from tests.export_runs import SECRET_LINE, adapter_run
    from training.export.save import export_run

    lora = adapter_run(tmp_path_factory)
    run = tmp_path / "run"
    shutil.copytree(lora.path, run)
    memory_folder = build_memory_for(run / "train.jsonl")
    write_facts(facts_path(run / "train.jsonl"), ["door code 4921 is a secret fact"])
    assert SECRET_LINE in (memory_folder / "exchanges.jsonl").read_text()
    folder = export_run(run, tmp_path / "export", merge=False)
    for path in folder.rglob("*"):
        assert path.suffix != ".memory" and path.name not in ("exchanges.jsonl", "vectors.npz", "idf.npy")
        if path.is_file():
            assert SECRET_LINE.encode() not in path.read_bytes() and b"secret fact" not in path.read_bytes(), path.name
