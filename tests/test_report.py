"""The persona report on real (tiny) runs: causal LoRA, seq2seq LoRA and a full fine-tune, on the sample
persona's held-out conversations; held-out rows, the control, teacher-forced loss, privacy, cancel."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import torch

from tests.export_runs import adapter_run, full_run
from tests.report_runs import on_sam_data, sam_examples
from training.chat.decoding import DecodingSettings
from training.errors import UserError
from training.report.build import REPORT_FILE, ReportOptions, build_report, load_report
from training.report.heldout import control_row, held_out_rows, reply_text
from training.report.loss import Cancelled, reply_losses
from training.train.config import RunConfig

QUICK = ReportOptions(limit=6, seed=0, decoding=DecodingSettings(do_sample=True, max_new_tokens=8, seed=0))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()  # tiny models: a second thread only waits on the shared cores
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sam_data(tmp_path_factory):
    return sam_examples(tmp_path_factory)


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory, sam_data):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_data, "causal")


@pytest.fixture(scope="module")
def causal_report(causal_run):
    return build_report(causal_run, QUICK)


def test_control_row_swaps_roles_so_the_other_persons_turn_is_the_reply():
    row = {
        "prompt": [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": "hey"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "u coming?"},
        ],
        "completion": [{"role": "assistant", "content": "omw"}],
    }
    assert control_row(row) == {
        "prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "yo"}],
        "completion": [{"role": "assistant", "content": "u coming?"}],
    }  # "hey" (now the assistant's) would open the prompt: templates want the user first, so it goes
    opening = {"prompt": [{"role": "user", "content": "first!"}], "completion": [{"role": "assistant", "content": "k"}]}
    assert control_row(opening) is None  # nothing before it to answer


def test_held_out_rows_are_the_validation_rows_picked_by_seed(causal_run, sam_data):
    config = RunConfig.from_yaml(causal_run / "config.yaml")
    everything = held_out_rows(config)
    validation = [json.loads(line) for line in Path(sam_data[1]).read_text().splitlines()]
    assert everything.available == len(everything.rows) == len(validation) == 28
    assert [reply_text(r) for r in everything.rows] == [reply_text(r) for r in validation]
    assert all(row["prompt"][0] == {"role": "system", "content": "You are Sam Rivera."} for row in everything.rows)
    picked = held_out_rows(config, limit=5, seed=1)
    assert len(picked.rows) == 5 and all(row in everything.rows for row in picked.rows)
    assert picked.rows == held_out_rows(config, limit=5, seed=1).rows != held_out_rows(config, limit=5, seed=2).rows


def test_rows_it_trained_on_are_never_reported_on(causal_run, sam_data, tmp_path):
    config = RunConfig.from_yaml(causal_run / "config.yaml")
    train_lines = Path(sam_data[0]).read_text().splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(train_lines[:3] + Path(sam_data[1]).read_text().splitlines()[:2]) + "\n")
    held = held_out_rows(config, data=str(mixed))
    assert (held.available, held.left_out_as_trained, len(held.rows)) == (5, 3, 2)
    with pytest.raises(UserError, match="no held-out chat rows"):
        held_out_rows(config, data=str(sam_data[0]))
    with pytest.raises(UserError, match="trained without held-out data.*--data"):
        held_out_rows(config.with_overrides(validation_file=""))


def transformers_loss(model, row, config, use_adapter=True) -> float:
    """The mean loss transformers itself computes with labels on the reply tokens only."""
    from training.templates import tokenize_row

    item = tokenize_row(model.tokenizer, row, config.max_length)
    ids = torch.tensor([item["input_ids"]])
    labels = torch.tensor([[t if m else -100 for t, m in zip(item["input_ids"], item["completion_mask"])]])
    with torch.no_grad():
        if use_adapter:
            return model.model(input_ids=ids, labels=labels).loss.item()
        with model.model.disable_adapter():
            return model.model(input_ids=ids, labels=labels).loss.item()


def test_teacher_forced_loss_is_the_models_own_loss_on_the_reply_tokens(causal_run):
    from training.chat.generate import load_chat_model

    config = RunConfig.from_yaml(causal_run / "config.yaml")
    rows = held_out_rows(config, limit=3).rows
    model = load_chat_model(causal_run)
    for use_adapter in (True, False):
        losses = reply_losses(model, [*rows, None], config, use_adapter=use_adapter)
        assert losses.tokens[-1] == 0 and losses.nll[-1] == 0  # None: no row to score
        for index, row in enumerate(rows):
            assert losses.nll[index] / losses.tokens[index] == pytest.approx(
                transformers_loss(model, row, config, use_adapter), rel=1e-4
            )
    tuned, base = (reply_losses(model, rows, config, use_adapter=flag).nll for flag in (True, False))
    assert (tuned != base).all()  # the adapter was really switched off for the base


def test_causal_report_numbers_privacy_and_file(causal_report, causal_run):
    report = causal_report
    assert report["data"]["rows"] == 6 and report["model"]["base_is"].startswith("the same weights")
    loss = report["loss"]
    assert loss["rows"] == 6 and 0 < loss["control_rows"] <= 6 and loss["tokens"]["person"] > 0
    drop_person = loss["person"]["base"] - loss["person"]["tuned"]
    drop_others = loss["others"]["base"] - loss["others"]["tuned"]
    assert loss["gap"]["value"] == pytest.approx(drop_person - drop_others)
    assert {m["key"] for m in report["metrics"]["voice"]} == {
        "p_person",
        "style_distance",
        "length_wasserstein",
        "length_ks",
        "bubbles",
    }
    assert len(report["metrics"]["habits"]) == 7 and len(report["plots"]["lengths"]["real"]) == 6
    assert load_report(causal_run) == json.loads(json.dumps(report))  # saved as report.json
    # Numbers only: no held-out message, reply or context is quoted anywhere in it.
    config = RunConfig.from_yaml(causal_run / "config.yaml")
    saved = (causal_run / REPORT_FILE).read_text()
    quotes = {m["content"] for row in held_out_rows(config).rows for m in row["prompt"] + row["completion"]}
    assert not [quote for quote in quotes if len(quote) > 12 and json.dumps(quote)[1:-1] in saved]
    assert "examples" not in report


def test_the_same_seed_gives_the_same_report_and_examples_quote_only_when_asked(causal_report, causal_run):
    again = build_report(causal_run, dataclasses.replace(QUICK, include_examples=True))
    assert again["metrics"] == causal_report["metrics"] and again["loss"] == causal_report["loss"]
    examples = again["examples"]
    assert len(examples) == 3 and all(set(e) == {"context", "real", "tuned", "base"} for e in examples)
    config = RunConfig.from_yaml(causal_run / "config.yaml")
    real = [reply_text(row) for row in held_out_rows(config, limit=6, seed=0).rows]
    assert all(example["real"] in real for example in examples)
    assert load_report(causal_run)["examples"] == examples


def test_seq2seq_run_reports_too(tmp_path_factory, sam_data):
    folder = on_sam_data(adapter_run(tmp_path_factory, arch="blenderbot"), tmp_path_factory, sam_data, "seq2seq")
    report = build_report(folder, dataclasses.replace(QUICK, limit=4))
    assert report["model"]["seq2seq"] and report["loss"]["person"]["tuned"] > 0
    assert report["loss"]["person"]["tuned"] != report["loss"]["person"]["base"]
    assert len(report["plots"]["lengths"]["tuned"]) == 4


def test_full_fine_tune_compares_with_its_base_model_loaded_separately(tmp_path_factory, sam_data):
    from training.chat.generate import load_chat_model

    run = full_run(tmp_path_factory)
    folder = on_sam_data(run, tmp_path_factory, sam_data, "full")
    report = build_report(folder, dataclasses.replace(QUICK, limit=3))
    assert "full fine-tune" in report["model"]["base_is"]
    config = RunConfig.from_yaml(folder / "config.yaml")
    rows = held_out_rows(config, limit=3, seed=0).rows
    base = load_chat_model(run.base)
    expected = reply_losses(base, rows, config)
    assert report["loss"]["person"]["base"] == pytest.approx(expected.nll.sum() / expected.tokens.sum(), rel=1e-5)
    assert report["loss"]["person"]["tuned"] != report["loss"]["person"]["base"]


def test_cancel_stops_the_report_and_writes_nothing(causal_run):
    (causal_run / REPORT_FILE).unlink(missing_ok=True)
    cancel = threading.Event()
    seen = []

    def progress(fraction, what):
        seen.append((fraction, what))
        if what.startswith("tuned model replying"):
            cancel.set()

    with pytest.raises(Cancelled):
        build_report(causal_run, QUICK, progress=progress, cancel=cancel)
    assert not (causal_run / REPORT_FILE).exists()
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1


def test_model_card_gets_the_report_numbers_and_examples_only_when_both_asked(causal_run, tmp_path):
    from training.export.save import export_run

    report = build_report(causal_run, dataclasses.replace(QUICK, include_examples=True))
    quoted = report["examples"][0]["real"].splitlines()[0]
    plain = (export_run(causal_run, tmp_path / "plain", merge=False) / "README.md").read_text(encoding="utf-8")
    assert "## Persona report" in plain and "Person-specific gap" in plain
    p_person = next(m for m in report["metrics"]["voice"] if m["key"] == "p_person")
    assert (
        f"| {p_person['label']} | {p_person['real']:.2f} | {p_person['tuned']:.2f} | {p_person['base']:.2f} |" in plain
    )
    assert quoted not in plain and "Side by side" not in plain
    with_examples = export_run(causal_run, tmp_path / "quoted", merge=False, report_examples=True)
    card = (with_examples / "README.md").read_text(encoding="utf-8")
    assert "### Side by side" in card and quoted in card
