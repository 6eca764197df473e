"""The run's feedback file: judgements appended whole, edited and deleted by id, never exported."""

import json
import multiprocessing
import os

import pytest

from training.chat import feedback
from training.errors import UserError

PROMPT = [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "u coming tonight?"}]
REWRITE = "ya ofc, 8ish 🍕"


def test_append_edit_delete_round_trip(tmp_path):
    up = feedback.record(
        tmp_path, PROMPT, "Certainly! I would be delighted.", "tuned", "up", decoding={"temperature": 0.7}
    )
    down = feedback.record(tmp_path, PROMPT, "I am an AI.", "base", "down")
    pair = feedback.record(tmp_path, PROMPT, "Certainly!", "tuned", "rewrite", rewrite=REWRITE)
    assert [e["id"] for e in feedback.read_feedback(tmp_path)] == [up["id"], down["id"], pair["id"]]
    assert feedback.read_feedback(tmp_path)[0] == up and up["decoding"] == {"temperature": 0.7}
    assert feedback.counts(feedback.read_feedback(tmp_path)) == {"up": 1, "down": 1, "rewrite": 1, "pairs": 1}

    edited = feedback.edit(tmp_path, up["id"], rewrite="see u there")  # a rewrite alone turns a thumb into a pair
    assert edited["verdict"] == "rewrite" and edited["rewrite"] == "see u there"
    assert feedback.edit(tmp_path, pair["id"], verdict="down")["rewrite"] is None
    assert feedback.delete(tmp_path, down["id"])["reply"] == "I am an AI."
    left = feedback.read_feedback(tmp_path)
    assert [(e["id"], e["verdict"]) for e in left] == [(up["id"], "rewrite"), (pair["id"], "down")]
    assert "I am an AI." not in feedback.feedback_path(tmp_path).read_text(encoding="utf-8")  # gone for good
    assert oct(os.stat(feedback.feedback_path(tmp_path)).st_mode & 0o777) == "0o600"  # private words


def test_bad_judgements_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="rewrite: empty"):
        feedback.record(tmp_path, PROMPT, "hi", "tuned", "rewrite", rewrite="  ")
    with pytest.raises(UserError, match="column: 'left'"):
        feedback.record(tmp_path, PROMPT, "hi", "left", "up")
    with pytest.raises(UserError, match="prompt: expected a non-empty list"):
        feedback.record(tmp_path, [], "hi", "tuned", "up")
    assert feedback.read_feedback(tmp_path) == []
    with pytest.raises(UserError, match="no judgement with id 'nope'"):
        feedback.delete(tmp_path, "nope")


def test_a_line_cut_by_a_crash_is_not_read_and_a_corrupt_line_is_named(tmp_path):
    kept = feedback.record(tmp_path, PROMPT, "hi", "tuned", "up")
    with open(feedback.feedback_path(tmp_path), "a", encoding="utf-8") as handle:
        handle.write('{"id": "half", "prompt": [')  # what a crash mid-write would leave, without its newline
    assert feedback.read_feedback(tmp_path) == [kept]
    with open(feedback.feedback_path(tmp_path), "a", encoding="utf-8") as handle:
        handle.write("\n" + json.dumps({**kept, "verdict": "meh"}) + "\n")
    with pytest.raises(UserError, match="feedback.jsonl line 2: not valid JSON"):
        feedback.read_feedback(tmp_path)


def _judge_many(folder: str, worker: int) -> None:
    for number in range(40):
        feedback.record(folder, PROMPT, f"w{worker}-{number} " + "x" * 5000, "tuned", "down")


def test_concurrent_writers_never_interleave_lines(tmp_path):
    # Four processes append 40 long lines each (longer than a pipe buffer): every line must come back whole.
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_judge_many, args=(str(tmp_path), worker)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    entries = feedback.read_feedback(tmp_path)
    assert len(entries) == 160
    assert sorted(e["reply"].split()[0] for e in entries) == sorted(f"w{w}-{n}" for w in range(4) for n in range(40))


def test_exports_leave_the_feedback_file_out(tmp_path_factory):
    from tests.export_runs import adapter_run
    from training.export.save import export_run

    run = adapter_run(tmp_path_factory)
    feedback.record(run.path, PROMPT, "Certainly!", "tuned", "rewrite", rewrite=REWRITE)
    try:
        for merge in (False, True):
            out = export_run(run.path, tmp_path_factory.mktemp("export") / "out", merge=merge)
            names = [p.name for p in out.rglob("*")]
            assert feedback.FILE_NAME not in names
            assert not any(REWRITE.encode() in p.read_bytes() for p in out.rglob("*") if p.is_file())
    finally:
        feedback.feedback_path(run.path).unlink()  # the shared run fixture stays as other tests expect it
