"""Training on tiny local models (CPU, seconds): methods, loss masks, metrics, STOP, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.errors import UserError
from training.tiny import train_tokenizer
from training.train import runs
from training.train.callbacks import METRIC_KEYS
from training.train.config import RunConfig
from training.train.trainer import train

PAIRS = [
    ("are you coming tonight?", "yeah omw\nsave me a seat"),
    ("did you see the game", "lol no\nspoilers pls"),
    ("dinner at 7?", "ya sounds good"),
    ("how was work", "long\nsend snacks"),
    ("you up?", "always lol"),
    ("movie tomorrow?", "omg yes\nwhich one"),
]


def persona_rows(count: int, offset: int = 0) -> list[dict]:
    rows = []
    for index in range(offset, offset + count):
        question, answer = PAIRS[index % len(PAIRS)]
        rows.append({
            "prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": question}],
            "completion": [{"role": "assistant", "content": answer}],
        })  # fmt: skip
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("persona")
    return {
        "train": write_jsonl(folder / "sam.jsonl", persona_rows(48)),
        "validation": write_jsonl(folder / "sam.val.jsonl", persona_rows(8, offset=3)),
    }


def _corpus() -> list[str]:
    return [m["content"] for row in persona_rows(12) for m in row["prompt"] + row["completion"]] * 4


def micro_model(out: Path, arch: str) -> Path:
    """tiny.py's tokenizer and chat template on a ~0.1M-parameter model.

    build_tiny_model's ~4M-parameter models cost ~0.3 s a step on this 2-core machine; these
    train the same code paths ten times faster.
    """
    from transformers import (
        BlenderbotConfig,
        BlenderbotForConditionalGeneration,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = train_tokenizer(_corpus(), vocab_size=300, model_max_length=256)
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
               "bos_token_id": tokenizer.eos_token_id}  # fmt: skip
    if arch == "llama":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **special)
        model = LlamaForCausalLM(config)
    else:
        config = BlenderbotConfig(vocab_size=len(tokenizer), d_model=64, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                  decoder_ffn_dim=128, max_position_embeddings=256,
                                  decoder_start_token_id=tokenizer.eos_token_id, **special)
        model = BlenderbotForConditionalGeneration(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return micro_model(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def blenderbot(tmp_path_factory) -> Path:
    return micro_model(tmp_path_factory.mktemp("bb"), "blenderbot")


def tiny_config(tmp_path: Path, model: Path, data: dict[str, Path], **fields) -> RunConfig:
    settings = dict(
        model=str(model), train_file=str(data["train"]), output_dir=str(tmp_path / "run"), max_length=64,
        batch_size=8, max_steps=4, learning_rate=3e-3, logging_steps=1, save_steps=2, eval_steps=2,
        target_modules="all-linear", lora_r=8, lora_alpha=16, lora_dropout=0.0, dtype="fp32", seed=0,
    )  # fmt: skip
    return RunConfig(**{**settings, **fields})


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


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
        tmp_path, blenderbot, data, method="adalora", adalora_init_r=6, adalora_target_r=2, max_steps=10,
        target_modules="auto", validation_file=str(data["validation"]), early_stopping_patience=3,
    )  # fmt: skip
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
    row = {"prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "yo\nyou up?"}],
           "completion": [{"role": "assistant", "content": "always\nlol"}]}  # fmt: skip
    dataset, _ = seq2seq_dataset(tokenizer, [row], RunConfig(model=str(blenderbot)), separator="|")

    assert tokenizer.decode(dataset[0]["input_ids"], skip_special_tokens=True) == "yo|you up?"
    assert tokenizer.decode(dataset[0]["labels"], skip_special_tokens=True) == "always|lol"


def test_stop_file_stops_at_the_next_step_then_resume_continues(tmp_path, llama, data, monkeypatch):
    config = tiny_config(tmp_path, llama, data, max_steps=12, save_steps=50)
    run = runs.Run(tmp_path / "run")
    touch_stop_when_step_3_is_logged(run, monkeypatch)

    stopped = train(config)

    # STOP appeared after step 3's end-of-step check, so step 4 is the one that ends the run.
    assert stopped["state"] == "stopped" and stopped["step"] == 4, stopped
    assert (run.final_dir / "adapter_model.safetensors").is_file()
    assert runs.last_checkpoint(run).name == "checkpoint-4"

    stopped_elapsed = max(line["elapsed"] for line in metrics(run.path))

    resumed = train(config, resume=True)

    assert resumed["state"] == "completed" and resumed["step"] == 12, resumed
    lines = [line for line in metrics(run.path) if line["loss"] is not None]
    assert [line["step"] for line in lines] == list(range(1, 13))  # picked up at the checkpoint, each step logged once
    # train_loss is the mean loss of the steps trained since the resume (logged one per step here),
    # not their sum spread over all 12 steps.
    after_resume = [line["loss"] for line in lines if line["step"] > 4]
    assert resumed["train_loss"] == pytest.approx(sum(after_resume) / len(after_resume), rel=1e-3)
    # The clock goes on from where the first process stopped, rather than starting again at zero.
    elapsed = [line["elapsed"] for line in lines]
    assert elapsed == sorted(elapsed) and elapsed[4] >= stopped_elapsed > 0


def touch_stop_when_step_3_is_logged(run: runs.Run, monkeypatch) -> None:
    # Inside the training loop rather than from a watcher thread, so the test cannot race the steps.
    from training.train.callbacks import MetricsCallback

    original = MetricsCallback.on_log

    def on_log(self, args, state, control, logs=None, **kwargs):
        original(self, args, state, control, logs=logs, **kwargs)
        if state.global_step == 3:
            run.stop_path.touch()

    monkeypatch.setattr(MetricsCallback, "on_log", on_log)


def test_killed_training_process_is_reported_and_resumes(tmp_path, llama, data, isolated_data_dir):
    # 400 steps so that even a fast machine is still training when the kill comes.
    run = runs.create_run(tiny_config(tmp_path, llama, data, max_steps=400, save_steps=3, output_dir=""))
    process = runs.start(run)
    try:
        wait_until(lambda: runs.last_checkpoint(run) is not None, timeout=120, process=process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_at = int(runs.last_checkpoint(run).name.split("-")[1])

        status = runs.refresh(run)

        assert status["state"] == "failed" and status["reason"].startswith("process died") and status["resumable"]
        # Finish soon after the checkpoint rather than running all 400 steps.
        run.config().with_overrides(max_steps=killed_at + 4).save(run.config_path)
        process = runs.resume(run)
        assert process.wait(timeout=180) == 0, run.log_path.read_text()[-2000:]
    finally:
        if process.poll() is None:  # a failed assertion must not leave training running
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    final = runs.read_status(run)
    assert final["state"] == "completed" and final["step"] == killed_at + 4
    resumed_steps = [line["step"] for line in metrics(run.path) if line["step"] > killed_at and line["loss"] is not None]
    assert resumed_steps == [killed_at + 1, killed_at + 2, killed_at + 3, killed_at + 4]
    assert [summary["state"] for summary in runs.list_runs()] == ["completed"]


def wait_until(condition, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, "training process ended early"
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_out_of_memory_fails_with_a_hint(tmp_path, llama, data, monkeypatch):
    from training.train import methods

    def run_out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(methods, "load_model", run_out_of_memory)
    status = train(tiny_config(tmp_path, llama, data))

    assert status["state"] == "failed" and status["reason"] == "out of memory"
    assert "batch_size" in status["hint"] and "max_length" in status["hint"]


def test_unexpected_error_gives_one_line_and_the_traceback_goes_to_the_log(tmp_path, llama, data, monkeypatch):
    from training.train import methods

    def broken(*args, **kwargs):
        raise KeyError("lm_head")

    monkeypatch.setattr(methods, "load_model", broken)
    status = train(tiny_config(tmp_path, llama, data))

    assert status["state"] == "failed" and status["reason"].startswith("KeyError: 'lm_head'")
    assert "\n" not in status["reason"]
    assert "Traceback (most recent call last)" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "qlora"}, "method qlora: needs a CUDA GPU"),
        ({"train_file": "/nowhere/me.jsonl"}, "train_file: /nowhere/me.jsonl does not exist"),
        ({"lora_r": 0}, "lora_r: 0"),
    ],
)
def test_user_errors_end_the_run_with_their_message(tmp_path, llama, data, fields, message):
    status = train(tiny_config(tmp_path, llama, data, **fields))

    assert status["state"] == "failed" and status["kind"] == "user" and message in status["reason"]


def test_cli_exit_code_and_one_line_error(tmp_path, llama, data):
    command = [sys.executable, "-m", "training", "train", "--model", str(llama), "--data", str(tmp_path / "none.jsonl"),
               "--output", str(tmp_path / "run")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=runs.PROJECT_ROOT, timeout=120)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: train_file:")


def test_stop_file_ends_training_after_the_current_step_with_a_save(tmp_path):
    from transformers import TrainerControl

    from training.train.callbacks import StopFileCallback

    run = runs.Run(tmp_path)
    callback, control = StopFileCallback(run), TrainerControl()
    callback.on_step_end(None, None, control)
    assert not control.should_training_stop and not callback.stopped

    run.stop_path.touch()
    callback.on_step_end(None, None, control)

    assert control.should_training_stop and control.should_save and callback.stopped


def cli_train(*args, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALKLIKE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "training", "train", *map(str, args)], capture_output=True,
                          text=True, cwd=runs.PROJECT_ROOT, timeout=timeout, env=env)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def folder_in_the_way(tmp_path: Path) -> Path:
    (tmp_path / "taken").write_text("a file, not a folder")
    return tmp_path / "taken"


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("x")
    return tmp_path / "notes.txt" / "run"


def read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits: a place even root cannot write
        return Path("/sys/talklike-run")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    return folder / "run"


@pytest.mark.parametrize("where", [folder_in_the_way, under_a_file, read_only])
def test_cli_output_that_cannot_hold_a_run_is_a_one_line_error(tmp_path, llama, data, where):
    output = where(tmp_path)
    result = cli_train("--model", llama, "--data", data["train"], "--output", output, data_dir=tmp_path / "data")
    assert one_line_error(result).startswith(f"error: output folder {output}: cannot hold a run (")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("x" * 300, "is too long (300 characters); expected at most 100"), ("two\nlines", "no '/', line breaks")],
    ids=["300-characters", "newline"],
)
def test_cli_run_names_a_folder_cannot_take_are_refused(tmp_path, llama, data, name, expected):
    result = cli_train("--model", llama, "--data", data["train"], "--name", name, data_dir=tmp_path / "data")
    assert expected in one_line_error(result)
    assert not (tmp_path / "data" / "runs").exists() or not any((tmp_path / "data" / "runs").iterdir())


def test_cli_refuses_a_second_run_while_one_is_active(tmp_path, llama, data):
    data_dir = tmp_path / "data"
    busy = runs.create_run(RunConfig(name="busy", model=str(llama), train_file=str(data["train"])), data_dir / "runs")
    other = subprocess.Popen(["sleep", "60"])  # stands in for the training process of the active run
    try:
        runs.write_status(busy, state="running", pid=other.pid, pid_started=runs.process_identity(other.pid))
        result = cli_train("--model", llama, "--data", data["train"], "--name", "second", "--max-steps", 2,
                           data_dir=data_dir)  # fmt: skip
        elsewhere = cli_train("--model", llama, "--data", data["train"], "--output", tmp_path / "own-folder",
                              "--max-steps", 2, data_dir=data_dir)  # fmt: skip
    finally:
        other.kill()
        other.wait()
    for refused in (result, elsewhere):
        assert one_line_error(refused) == "error: a run is already active: busy; stop it first, or pass --wait to queue this one"
    assert runs.read_status(runs.Run(data_dir / "runs" / "second"))["state"] != "running"
    assert not (data_dir / "runs" / "second" / "final").exists() and not (tmp_path / "own-folder" / "final").exists()


def test_rows_in_every_persona_shape_are_read_and_split(tmp_path):
    from training.train.dataset import load_rows, read_rows

    messages = {"messages": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "yo"}, {"role": "user", "content": "sup"},
                             {"role": "assistant", "content": "nm"}]}  # fmt: skip
    path = write_jsonl(tmp_path / "mixed.jsonl", [messages, {"text": "Question: hi. Answer: yo"}, *persona_rows(18)])

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
