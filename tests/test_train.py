"""Training on tiny local models (CPU, seconds): methods, loss masks, metrics, data rows, checkpoints."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.train_fixtures import metrics, persona_rows, tiny_config, write_jsonl
from training.errors import UserError
from training.train import runs
from training.train.callbacks import METRIC_KEYS
from training.train.config import RunConfig
from training.train.trainer import train


def test_lora_loss_falls_and_every_metrics_line_has_the_required_keys(tmp_path, llama, data):
    status = train(tiny_config(tmp_path, llama, data, max_steps=40, scheduler="constant", lora_alpha=64))

    assert status["state"] == "completed", status
    lines = metrics(tmp_path / "run")
    losses = [line["loss"] for line in lines if line["loss"] is not None]
    assert len(losses) == 40
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3  # seeded: measured 5.36 -> 4.68
    for line in lines:
        assert set(METRIC_KEYS) <= set(line)
    training_lines = [line for line in lines if line["loss"] is not None]
    assert all(line["tokens_per_second"] > 0 and line["memory_mb"] > 0 for line in training_lines)
    assert training_lines[-1]["total_steps"] == 40 and training_lines[-1]["eta"] == 0
    final = tmp_path / "run" / "final"
    assert (final / "adapter_config.json").is_file() and (final / "tokenizer_config.json").is_file()
    assert json.loads((final / "talklike.json").read_text())["chat_template"] == "tokenizer"


@pytest.mark.parametrize("padding_free", [False, True])
def test_loss_covers_exactly_my_reply(tmp_path, llama, data, padding_free):
    from training.train import methods
    from training.train.dataset import causal_dataset
    from training.train.trainer import build_trainer

    config = tiny_config(tmp_path, llama, data, padding_free=padding_free)
    hardware = methods.Hardware.detect()
    loaded = methods.load_tokenizer(config, hardware)
    rows = persona_rows(4)
    dataset, dropped = causal_dataset(loaded.tokenizer, rows, config)
    methods.load_model(loaded, config, hardware, total_steps=4)
    trainer = build_trainer(config, runs.Run(tmp_path / "run"), loaded, hardware, dataset, None, [])
    batch = next(iter(trainer.get_train_dataloader()))

    trained_ids = batch["input_ids"][batch["labels"] != -100].tolist()
    assert dropped == 0
    # Shuffled order, so compare as sorted texts: each trained span is a reply and its end-of-turn marker.
    expected = sorted(row["completion"][0]["content"] + "<|im_end|>\n" for row in rows)
    decoded = loaded.tokenizer.decode(trained_ids).split("<|im_end|>\n")[:-1]
    assert sorted(text + "<|im_end|>\n" for text in decoded) == expected
    untrained = batch["labels"] == -100
    assert (batch["labels"][~untrained] == batch["input_ids"][~untrained]).all()


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("dora", {"neftune_noise_alpha": 5.0}),
        ("rslora", {"padding_free": True, "activation_checkpointing": True}),
        ("full", {"packing": True}),
    ],
)
def test_each_method_trains_and_saves(tmp_path, llama, data, method, options):
    status = train(tiny_config(tmp_path, llama, data, method=method, learning_rate=1e-3, **options))

    assert status["state"] == "completed" and status["step"] == 4, status
    final = tmp_path / "run" / "final"
    if method == "full":
        assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    else:
        adapter = json.loads((final / "adapter_config.json").read_text())
        assert adapter["use_dora"] is (method == "dora") and adapter["use_rslora"] is (method == "rslora")


def test_seq2seq_blenderbot_with_adalora_prunes_ranks(tmp_path, blenderbot, data):
    config = tiny_config(
        tmp_path,
        blenderbot,
        data,
        method="adalora",
        adalora_init_r=6,
        adalora_target_r=2,
        max_steps=10,
        target_modules="auto",
        validation_file=str(data["validation"]),
        early_stopping_patience=3,
    )
    status = train(config)

    assert status["state"] == "completed", status
    adapter = json.loads((tmp_path / "run" / "final" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "ADALORA" and adapter["task_type"] == "SEQ_2_SEQ_LM"
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    kept = [sum(mask) for mask in adapter["rank_pattern"].values()]
    assert kept and sum(kept) < 6 * len(kept)  # update_and_allocate ran: the budget shrank below init_r
    eval_losses = [line["eval_loss"] for line in metrics(tmp_path / "run") if line["eval_loss"] is not None]
    assert len(eval_losses) >= 2 and status["best_eval_loss"] == min(eval_losses)


def test_seq2seq_input_joins_messages_with_the_separator(blenderbot, data):
    from transformers import AutoTokenizer

    from training.train.dataset import seq2seq_dataset

    tokenizer = AutoTokenizer.from_pretrained(blenderbot)
    row = {
        "prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "yo\nyou up?"}],
        "completion": [{"role": "assistant", "content": "always\nlol"}],
    }
    dataset, _ = seq2seq_dataset(tokenizer, [row], RunConfig(model=str(blenderbot)), separator="|")

    assert tokenizer.decode(dataset[0]["input_ids"], skip_special_tokens=True) == "yo|you up?"
    assert tokenizer.decode(dataset[0]["labels"], skip_special_tokens=True) == "always|lol"


def test_rows_in_every_persona_shape_are_read_and_split(tmp_path):
    from training.train.dataset import load_rows, read_rows

    messages = {
        "messages": [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "sup"},
            {"role": "assistant", "content": "nm"},
        ]
    }
    distinct = [
        {
            "prompt": [{"role": "user", "content": f"message {n}"}],
            "completion": [{"role": "assistant", "content": f"reply {n}"}],
        }
        for n in range(18)
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", [messages, {"text": "Question: hi. Answer: yo"}, *distinct])

    rows = read_rows(path)

    assert len(rows) == 21  # one row per assistant turn of the messages row
    assert rows[1]["prompt"][-1]["content"] == "sup" and rows[1]["completion"] == [messages["messages"][-1]]
    split = load_rows(RunConfig(train_file=str(path), validation_split=0.1, system_prompt="Be Sam."))
    assert (len(split.train), len(split.validation)) == (19, 2)
    assert all(row["prompt"][0]["role"] == "system" for row in split.train if "prompt" in row)


def test_bad_rows_name_the_file_and_line(tmp_path):
    from training.train.dataset import read_rows

    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{"prompt": "hi", "completion": "yo"}\n')

    with pytest.raises(UserError, match="broken.jsonl line 2: prompt and completion must be non-empty lists"):
        read_rows(path)


def test_a_run_already_training_elsewhere_is_not_started_twice(tmp_path, llama, data):
    config = tiny_config(tmp_path, llama, data)
    run = runs.Run(tmp_path / "run")
    run.path.mkdir()
    other = subprocess.Popen(["sleep", "30"])
    try:
        runs.write_status(run, state="running", pid=other.pid, pid_started=runs.process_identity(other.pid))
        with pytest.raises(UserError, match=f"run run: already running \\(pid {other.pid}\\)"):
            train(config)
    finally:
        other.kill()
        other.wait()
    assert runs.read_status(run)["pid"] == other.pid  # the other process's status was left alone


def test_padding_free_batches_score_exactly_like_padded_ones(tmp_path, llama, data):
    # Flattened rows must not attend across example boundaries, even without flash attention.
    import torch

    from training.train import methods
    from training.train.dataset import causal_dataset
    from training.train.trainer import build_trainer

    losses = []
    for padding_free in (False, True):
        config = tiny_config(tmp_path, llama, data, padding_free=padding_free)
        hardware = methods.Hardware.detect()
        loaded = methods.load_tokenizer(config, hardware)
        dataset, _ = causal_dataset(loaded.tokenizer, persona_rows(6), config)
        model = methods.load_model(loaded, config, hardware, total_steps=4)
        trainer = build_trainer(config, runs.Run(tmp_path / "run"), loaded, hardware, dataset, dataset, [])
        batch = next(iter(trainer.get_eval_dataloader()))  # not shuffled: same rows, same order
        assert ("attention_mask" in batch) is not padding_free
        with torch.no_grad():
            losses.append(model(**batch).loss.item())

    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


@pytest.mark.parametrize(("kept", "expected"), [(1, [4]), (0, [1, 2, 3, 4])])
def test_save_total_limit_keeps_the_newest_checkpoints(tmp_path, llama, data, kept, expected):
    status = train(tiny_config(tmp_path, llama, data, save_steps=1, save_total_limit=kept))

    assert status["state"] == "completed", status
    folders = (tmp_path / "run" / "checkpoints").glob("checkpoint-*")
    assert sorted(int(folder.name.split("-")[1]) for folder in folders) == expected
