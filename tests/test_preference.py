"""Methods dpo and kto: a preference round on a finished tiny LoRA run, through the real CLI and TRL."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.export_runs import adapter_run, full_run
from tests.report_runs import on_sam_data, sam_examples
from tests.test_report_cli import run_cli
from training.errors import UserError
from training.report.heldout import held_out_rows
from training.train.config import RunConfig
from training.train.estimate import estimate
from training.train.preference import read_preference_rows

BOT = "I am an AI language model and cannot attend events."


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "sft")


@pytest.fixture(scope="module")
def pairs(sft, tmp_path_factory):
    """Ten held-out prompts: the person's real reply chosen, an assistant-speak reply rejected."""
    rows = held_out_rows(RunConfig.from_yaml(sft / "config.yaml"), limit=10).rows
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    lines = [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": [{"role": "assistant", "content": BOT}]}
        for r in rows
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def dpo_round(sft, pairs, *flags):
    """`train --method dpo` from the finished run on the pairs: batch 2, a metrics line a step, fp32."""
    small = ("--batch-size", 2, "--logging-steps", 1, "--learning-rate", 1e-3, "--dtype", "fp32")
    return run_cli("train", "--method", "dpo", "--from-run", sft, "--data", pairs, *small, *flags)


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_dpo_round_trains_the_runs_adapter_against_itself_and_logs_preference_accuracy(sft, pairs, tmp_path):
    out = tmp_path / "dpo"
    done = dpo_round(sft, pairs, "--output", out, "--max-steps", 3, "--validation-split", 0.2, "--eval-steps", 3)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "completed"
    lines = metrics(out)
    # Step 1 runs before any update: the policy is the reference (the starting adapter), every reward is 0
    # and the DPO loss is -log(sigmoid(0)) = ln 2, which it would not be against the adapter-off base.
    first = lines[0]
    assert first["step"] == 1 and math.isclose(first["loss"], math.log(2), rel_tol=1e-5)
    assert first["rewards/margins"] == 0 and first["rewards/accuracies"] == 0
    trained = [line for line in lines if line.get("loss") is not None]
    assert [line["step"] for line in trained] == [1, 2, 3] and trained[-1]["rewards/margins"] != 0
    evaluated = [line for line in lines if line.get("eval_rewards/accuracies") is not None]
    assert len(evaluated) == 1 and 0 <= evaluated[0]["eval_rewards/accuracies"] <= 1  # on the 2 held-out pairs
    assert sorted(p.name for p in (out / "final").iterdir() if p.is_dir()) == []  # no reference copy in final/
    config = RunConfig.from_yaml(out / "config.yaml")
    assert config.model == RunConfig.from_yaml(sft / "config.yaml").model and not config.padding_free

    from training.chat.generate import load_chat_model

    model = load_chat_model(out)  # chats like any run, with the starting run's prompt settings
    assert model.has_adapter and model.prompt.system_prompt == "You are Sam Rivera."


def chosen_nll_per_token(run, rows) -> float:
    """Mean -log p of the chosen replies' tokens under a run's model, over all rows' tokens together."""
    import torch

    from training.chat.loading import load_chat_model

    model = load_chat_model(run)
    total, tokens = 0.0, 0
    for row in rows:
        template = model.tokenizer.apply_chat_template
        start = len(template(row["prompt"], add_generation_prompt=True, return_dict=True)["input_ids"])
        ids = torch.tensor([template(row["prompt"] + row["chosen"], return_dict=True)["input_ids"]])
        with torch.no_grad():
            logps = torch.log_softmax(model.model(input_ids=ids).logits[0, :-1].float(), -1)
        picked = logps.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[start - 1 :]
        total, tokens = total - float(picked.sum()), tokens + len(picked)
    return total / tokens


def test_rpo_alpha_adds_the_chosen_replies_nll_to_the_dpo_loss(sft, pairs, tmp_path):
    out = tmp_path / "rpo"
    common = ("--from-run", sft, "--data", pairs, "--max-steps", 1, "--batch-size", 10, "--logging-steps", 1)
    done = run_cli("train", "--method", "dpo", *common, "--rpo-alpha", 0.5, "--output", out, "--dtype", "fp32")
    assert done.returncode == 0, done.stderr
    assert RunConfig.from_yaml(out / "config.yaml").rpo_alpha == 0.5
    # One step over all ten pairs, before any update: the DPO term is ln 2 (policy = reference) and the
    # RPO term is 0.5 x the starting run's mean NLL per token of the ten chosen (real) replies.
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    expected = math.log(2) + 0.5 * chosen_nll_per_token(sft, rows)
    (first,) = [line for line in metrics(out) if line.get("loss") is not None]
    assert math.isclose(first["loss"], expected, rel_tol=1e-4), (first["loss"], expected)


def test_a_kto_round_takes_unpaired_rows(sft, pairs, tmp_path):
    from training.report.pairs import unpaired

    kto = tmp_path / "kto.jsonl"
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    kto.write_text("".join(json.dumps(row) + "\n" for row in unpaired(rows)), encoding="utf-8")
    out = tmp_path / "kto"
    done = run_cli(
        "train",
        "--method",
        "kto",
        "--from-run",
        sft,
        "--data",
        kto,
        "--output",
        out,
        "--max-steps",
        2,
        "--batch-size",
        4,
        "--logging-steps",
        1,
        "--dtype",
        "fp32",
    )
    assert done.returncode == 0, done.stderr
    assert [line["step"] for line in metrics(out) if line.get("loss") is not None] == [1, 2]
    assert all("kl" in line and "rewards/chosen" in line for line in metrics(out) if line.get("loss") is not None)


def test_refusals_name_the_run_the_line_and_the_field(sft, pairs, tmp_path, tmp_path_factory):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(sft, unfinished)
    shutil.rmtree(unfinished / "final")
    full = full_run(tmp_path_factory).path
    cases = [
        (("--data", pairs), "from_run: empty; method dpo trains a finished run's adapter further"),
        (("--from-run", unfinished, "--data", pairs), "has no trained model in final/ yet"),
        (("--from-run", full, "--data", pairs), "was trained with method full; a dpo round trains a LoRA adapter"),
        (
            ("--from-run", sft, "--data", sam_examples(tmp_path_factory)[0]),
            "sam.jsonl line 1: expected {prompt, chosen, rejected} for method dpo, got ['completion', 'prompt']",
        ),
    ]
    for number, (args, expected) in enumerate(cases):
        done = run_cli("train", "--method", "dpo", *args, "--output", tmp_path / f"out{number}", "--max-steps", 1)
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("line", "method", "expected"),
    [
        (
            '{"prompt": [{"role": "user", "content": "hi"}], "chosen": "yo", "rejected": []}',
            "dpo",
            "p.jsonl line 2: chosen: expected a list with the assistant's reply",
        ),
        (
            '{"prompt": [{"role": "assistant", "content": "hi"}], "chosen": [], "rejected": []}',
            "dpo",
            "p.jsonl line 2: prompt: expected a list of {role, content} messages ending with the user's",
        ),
        (
            '{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], '
            '"label": "yes"}',
            "kto",
            "p.jsonl line 2: label: 'yes'; expected true (desirable) or false",
        ),
        ("{not json", "dpo", "p.jsonl line 2: not valid JSON"),
    ],
)
def test_a_bad_pairs_line_is_named_with_its_field(tmp_path, line, method, expected):
    good = {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "yo"}],
        "rejected": [{"role": "assistant", "content": "Hello!"}],
        "completion": [{"role": "assistant", "content": "yo"}],
        "label": True,
    }
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(good) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=expected.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
        read_preference_rows(path, method)


def test_the_estimate_counts_both_sequences_and_the_reference_pass():
    lora = RunConfig(model="offline-tiny", method="lora", max_steps=10, batch_size=4, max_length=128)
    dpo = RunConfig(model="offline-tiny", method="dpo", from_run="x", max_steps=10, batch_size=4, max_length=128)
    plain, preference = estimate(lora, examples=100), estimate(dpo, examples=100)
    # Adapter training costs 4N FLOPs a token; DPO adds the reference's forward (2N) over twice the tokens:
    # (4 + 2) x 2 / 4 = 3 times the compute of an SFT step on the same rows.
    assert math.isclose(preference.hours / plain.hours, 3.0, rel_tol=1e-9)
    assert math.isclose(preference.memory_gb["activations"], 2 * plain.memory_gb["activations"], rel_tol=1e-6)


def test_a_rounds_report_reads_the_starting_runs_conversations(sft, pairs):
    config = RunConfig.from_yaml(sft / "config.yaml")
    round_config = RunConfig(name="dpo", model=config.model, method="dpo", from_run=str(sft), train_file=str(pairs))
    assert held_out_rows(round_config).rows == held_out_rows(config).rows


def test_a_stopped_round_resumes_from_its_own_adapter_not_the_reference(sft, pairs, tmp_path):
    common = ("--scheduler", "constant", "--save-steps", 2)
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert dpo_round(sft, pairs, *common, "--max-steps", 4, "--output", straight).returncode == 0
    assert dpo_round(sft, pairs, *common, "--max-steps", 2, "--output", halves).returncode == 0
    assert not (halves / "checkpoints" / "checkpoint-2" / "ref").exists()  # only the trained adapter is saved
    done = run_cli("train", halves / "config.yaml", "--resume", "--max-steps", 4)
    assert done.returncode == 0, done.stderr

    def losses(run):
        return {line["step"]: line["loss"] for line in metrics(run) if line.get("loss") is not None}

    # Steps 3 and 4 after the resume are the uninterrupted run's: it went on from its step-2 adapter.
    resumed, whole = losses(halves), losses(straight)
    assert sorted(resumed) == [1, 2, 3, 4]
    assert all(math.isclose(resumed[step], whole[step], rel_tol=1e-4) for step in (3, 4)), (resumed, whole)
