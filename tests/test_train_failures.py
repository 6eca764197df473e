"""Training that stops, is killed, fails or is refused (CPU, seconds): STOP and resume, a killed
process, out of memory, unexpected errors, and the CLI's one-line refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train_fixtures import metrics, tiny_config
from training.train import runs
from training.train.config import RunConfig
from training.train.trainer import train


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
    resumed_steps = [
        line["step"] for line in metrics(run.path) if line["step"] > killed_at and line["loss"] is not None
    ]
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
    command = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--model",
        str(llama),
        "--data",
        str(tmp_path / "none.jsonl"),
        "--output",
        str(tmp_path / "run"),
    ]
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
    return subprocess.run(
        [sys.executable, "-m", "training", "train", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=runs.PROJECT_ROOT,
        timeout=timeout,
        env=env,
    )


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
        result = cli_train(
            "--model", llama, "--data", data["train"], "--name", "second", "--max-steps", 2, data_dir=data_dir
        )
        elsewhere = cli_train(
            "--model",
            llama,
            "--data",
            data["train"],
            "--output",
            tmp_path / "own-folder",
            "--max-steps",
            2,
            data_dir=data_dir,
        )
    finally:
        other.kill()
        other.wait()
    for refused in (result, elsewhere):
        assert (
            one_line_error(refused)
            == "error: a run is already active: busy; stop it first, or pass --wait to queue this one"
        )
    assert runs.read_status(runs.Run(data_dir / "runs" / "second"))["state"] != "running"
    assert not (data_dir / "runs" / "second" / "final").exists() and not (tmp_path / "own-folder" / "final").exists()
