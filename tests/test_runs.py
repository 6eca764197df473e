"""Run folders on disk: creation, status, tailing metrics, dead processes, one active run at a time."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from training.errors import UserError
from training.train import runs
from training.train.config import RunConfig


def make_run(name: str = "", **fields) -> runs.Run:
    return runs.create_run(RunConfig(name=name, model="offline-tiny", train_file="me.jsonl", **fields))


def mark_running(run: runs.Run, pid: int | None = None) -> None:
    pid = pid or os.getpid()
    runs.write_status(run, state="running", pid=pid, pid_started=runs.process_identity(pid), started=time.time())


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_create_run_writes_the_config_and_never_reuses_a_folder(isolated_data_dir):
    first = make_run("sam")
    second = make_run("sam")

    assert first.path == isolated_data_dir / "runs" / "sam" and second.name == "sam-2"
    saved = first.config()
    assert saved.name == "sam" and saved.output_dir == str(first.path)
    # The training process may start in another folder, so a relative data path is made absolute.
    assert saved.train_file == str(Path("me.jsonl").resolve())
    assert first.status()["state"] == "created"


def test_create_run_names_unnamed_runs_after_the_model_and_refuses_bad_configs(isolated_data_dir):
    assert make_run().name.startswith("offline-tiny-")
    with pytest.raises(UserError, match="lora_r: 0"):
        make_run("broken", lora_r=0)
    assert not (isolated_data_dir / "runs" / "broken").exists()


def test_status_updates_merge_and_leave_no_temp_file():
    run = make_run("s")

    runs.write_status(run, state="running", pid=123)
    status = runs.write_status(run, best_eval_loss=1.5)

    assert (status["state"], status["pid"], status["best_eval_loss"]) == ("running", 123, 1.5)
    assert json.loads(run.status_path.read_text()) == status
    assert sorted(path.name for path in run.path.iterdir()) == [".status.lock", "config.yaml", "status.json"]


def test_read_metrics_tails_and_waits_for_a_half_written_line():
    run = make_run("m")
    with open(run.metrics_path, "w") as handle:
        handle.write('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.5}\n{"step": 3, "lo')

    records, next_line = runs.read_metrics(run)
    assert [record["step"] for record in records] == [1, 2] and next_line == 2

    with open(run.metrics_path, "a") as handle:
        handle.write('ss": 2.0}\n')
    records, next_line = runs.read_metrics(run, next_line)
    assert records == [{"step": 3, "loss": 2.0}] and next_line == 3
    assert runs.read_metrics(run, next_line) == ([], 3)


def test_is_alive_knows_live_dead_and_reused_pids():
    run = make_run("p")
    mark_running(run)
    assert runs.is_alive(run)

    runs.write_status(run, pid=dead_pid())
    assert not runs.is_alive(run)

    runs.write_status(run, pid=os.getpid(), pid_started=12345.0)  # same pid, different process start
    assert not runs.is_alive(run)


def test_a_dead_process_turns_running_into_failed_and_says_if_it_can_resume():
    plain, with_checkpoint = make_run("plain"), make_run("ckpt")
    checkpoint = with_checkpoint.checkpoints_dir / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    (with_checkpoint.checkpoints_dir / "checkpoint-6").mkdir()  # being written when the process died
    for run in (plain, with_checkpoint):
        mark_running(run, dead_pid())

    assert runs.refresh(plain)["reason"] == "process died" and not runs.refresh(plain)["resumable"]
    status = runs.refresh(with_checkpoint)
    assert status["state"] == "failed" and status["resumable"]
    assert status["reason"] == "process died; resume continues from checkpoint-3"


def test_start_refuses_while_another_run_is_active():
    busy, waiting = make_run("busy"), make_run("waiting")
    mark_running(busy)

    with pytest.raises(UserError, match="a run is already active: busy"):
        runs.start(waiting)
    assert waiting.status()["state"] == "created"


def test_resume_needs_a_checkpoint():
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        runs.resume(make_run("fresh"))


def test_stop_asks_through_the_stop_file():
    run = make_run("r")
    mark_running(run)

    runs.stop(run)

    assert run.stop_path.exists() and run.status()["state"] == "stopping"


def test_a_queued_run_waits_for_the_active_one_to_end():
    busy, queued = make_run("busy"), make_run("queued")
    mark_running(busy)
    runs.write_status(
        queued, state="queued", pid=os.getpid(), pid_started=runs.process_identity(os.getpid()), queued_at=time.time()
    )
    finished = threading.Timer(0.3, lambda: runs.write_status(busy, state="completed"))
    finished.start()

    started = time.time()
    assert runs.wait_for_turn(queued, poll_s=0.05)
    assert time.time() - started >= 0.25 and queued.status()["state"] == "running"


def test_a_queued_run_stopped_while_waiting_never_starts():
    busy, queued = make_run("busy"), make_run("queued")
    mark_running(busy)
    queued.stop_path.touch()

    assert runs.wait_for_turn(queued, poll_s=0.05) is False


def test_list_runs_reads_everything_from_disk():
    done, failed = make_run("done"), make_run("failed")
    runs.write_status(done, state="completed", started=100.0, ended=160.0, best_eval_loss=0.8, step=40, total_steps=40)
    mark_running(failed, dead_pid())

    summaries = {summary["name"]: summary for summary in runs.list_runs()}

    assert summaries["done"]["state"] == "completed" and summaries["done"]["duration_s"] == 60.0
    assert summaries["done"]["best_eval_loss"] == 0.8 and summaries["done"]["model"] == "offline-tiny"
    assert summaries["failed"]["state"] == "failed" and summaries["failed"]["reason"] == "process died"


def test_a_finished_run_started_by_the_ui_leaves_no_zombie():
    import psutil

    run = make_run("quick")  # its train_file does not exist: the process ends within seconds
    process = runs.start(run)  # the UI keeps this object and never waits on it
    deadline = time.time() + 120
    while runs.refresh(run)["state"] in runs.ACTIVE_STATES:
        assert time.time() < deadline, "the run never ended"
        time.sleep(0.2)
    assert runs.read_status(run)["state"] == "failed"

    def zombie() -> bool:
        try:
            return psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.time() + 10
    while zombie() and time.time() < deadline:
        time.sleep(0.1)
    assert not zombie(), "the ended training process was never waited for"
