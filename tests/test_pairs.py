"""`python -m training pairs`: feedback and held-out replies in TRL's preference formats, or one clear line."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.export_runs import adapter_run
from tests.report_runs import on_sam_data, sam_examples
from tests.test_report_cli import run_cli
from training.errors import UserError
from training.report.heldout import held_out_rows
from training.report.pairs import build_pairs
from training.train.config import RunConfig

ASKED = [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "u coming tonight?"}]
ASKED_AGAIN = [{"role": "user", "content": "lunch?"}]
FEEDBACK = [  # as the Chat tab writes it
    {
        "id": "a1",
        "time": 1.0,
        "prompt": ASKED,
        "reply": "I'd be happy to attend!",
        "column": "tuned",
        "decoding": {"temperature": 0.7},
        "verdict": "rewrite",
        "rewrite": "ya 8ish",
    },
    {
        "id": "b2",
        "time": 2.0,
        "prompt": ASKED,
        "reply": "Yes.",
        "column": "base",
        "decoding": {},
        "verdict": "down",
        "rewrite": None,
    },
    {
        "id": "c3",
        "time": 3.0,
        "prompt": ASKED_AGAIN,
        "reply": "sure lol",
        "column": "tuned",
        "decoding": {},
        "verdict": "up",
        "rewrite": None,
    },
    {
        "id": "d4",
        "time": 4.0,
        "prompt": ASKED_AGAIN,
        "reply": "ok",
        "column": "tuned",
        "decoding": {},
        "verdict": "rewrite",
        "rewrite": "ok",
    },  # rewritten to the same words: no preference in it
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_torch_thread):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "pairs-run")


@pytest.fixture
def judged(run, tmp_path):
    folder = tmp_path / "judged"
    shutil.copytree(run, folder)
    (folder / "feedback.jsonl").write_text("".join(json.dumps(e) + "\n" for e in FEEDBACK), encoding="utf-8")
    return folder


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_feedback_pairs_are_exactly_the_rewrites(judged, tmp_path):
    done = run_cli("pairs", judged, "--from-feedback", "--out", tmp_path / "pairs.jsonl")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "out": str(tmp_path / "pairs.jsonl"),
        "rows": 1,
        "feedback": 1,
        "skipped_same": 0,
    }
    assert read_lines(tmp_path / "pairs.jsonl") == [
        {
            "prompt": ASKED,
            "chosen": [{"role": "assistant", "content": "ya 8ish"}],
            "rejected": [{"role": "assistant", "content": "I'd be happy to attend!"}],
        }
    ]


def test_kto_rows_are_thumbs_and_both_sides_of_rewrites(judged):
    rows = build_pairs(judged, from_feedback=True, kto=True).rows

    def say(text):
        return [{"role": "assistant", "content": text}]

    assert rows == [
        {"prompt": ASKED, "completion": say("ya 8ish"), "label": True},
        {"prompt": ASKED, "completion": say("I'd be happy to attend!"), "label": False},
        {"prompt": ASKED, "completion": say("Yes."), "label": False},
        {"prompt": ASKED_AGAIN, "completion": say("sure lol"), "label": True},
        {"prompt": ASKED_AGAIN, "completion": say("ok"), "label": True},
        {"prompt": ASKED_AGAIN, "completion": say("ok"), "label": False},
    ]


def test_heldout_pairs_choose_the_real_reply_and_reject_the_models(run):
    from training.chat.decoding import preset
    from training.chat.generate import load_chat_model, reply

    pairs = build_pairs(run, from_heldout=3, seed=1, max_new_tokens=12)
    real = held_out_rows(RunConfig.from_yaml(run / "config.yaml"), limit=3, seed=1).rows
    assert len(pairs.rows) + pairs.skipped_same == 3 and pairs.sources == {"heldout": len(pairs.rows)}
    by_prompt = {json.dumps(row["prompt"]): row for row in real}
    model = load_chat_model(run)
    for pair in pairs.rows:
        row = by_prompt[json.dumps(pair["prompt"])]  # the prompt is the held-out row's, system prompt included
        assert pair["chosen"] == row["completion"] and pair["prompt"][0] == {
            "role": "system",
            "content": "You are Sam Rivera.",
        }
        alone = reply(model, pair["prompt"][:-1], pair["prompt"][-1]["content"], preset("Greedy", max_new_tokens=12))
        assert pair["rejected"] == [{"role": "assistant", "content": alone}]  # the tuned model's greedy reply


def test_refusals_are_one_line(run, tmp_path):
    untrained = tmp_path / "untrained"
    shutil.copytree(run, untrained)
    shutil.rmtree(untrained / "final")
    cases = [
        ((run, "--from-feedback"), "no feedback rewrites (✏️ say it like me) yet"),
        ((untrained, "--from-heldout", "2"), "no trained model in final/ yet"),
        ((run, "--from-heldout", "500"), "--from-heldout: 500 is more than the"),
        ((run,), "pairs: choose a source"),
    ]
    for args, expected in cases:
        done = run_cli("pairs", *args, "--out", tmp_path / "pairs.jsonl")
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pairs.jsonl").exists()
    with pytest.raises(UserError, match="no feedback judgements"):
        build_pairs(run, from_feedback=True, kto=True)
