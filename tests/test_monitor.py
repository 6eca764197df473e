"""The run monitor: reads only what changed on disk, yet shows what runs.list_runs()/read_metrics
would; and the Train tab's tick sends a browser nothing when nothing changed."""

from __future__ import annotations

import json
import os
import time

import gradio as gr
import pytest

from components import run_watch
from tests.test_runs import dead_pid, make_run, mark_running
from training.train import monitor as monitoring
from training.train import runs
from training.train.config import RunConfig


def append(run: runs.Run, *records: dict, newline: bool = True) -> None:
    with open(run.metrics_path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in records) + ("\n" if newline else ""))


@pytest.fixture
def counted(monkeypatch):
    """How often each file of a run is parsed."""
    calls = {"config": 0, "status": 0}
    real_config, real_status = RunConfig.from_yaml, runs.read_status

    def config(path):
        calls["config"] += 1
        return real_config(path)

    def status(run):
        calls["status"] += 1
        return real_status(run)

    monkeypatch.setattr(RunConfig, "from_yaml", staticmethod(config))
    monkeypatch.setattr(runs, "read_status", status)
    return calls


def test_metrics_are_followed_by_offset_and_a_half_written_line_waits(isolated_data_dir):
    run = make_run("a")
    follower = monitoring.MetricsFollower(run.metrics_path)
    assert follower.poll() == []
    append(run, {"step": 1}, {"step": 2})
    append(run, {"step": 3}, newline=False)  # the trainer is mid-write
    assert [r["step"] for r in follower.poll()] == [1, 2]
    with open(run.metrics_path, "a") as handle:
        handle.write("\n{not json\n")  # the rest of step 3, then a damaged line
    append(run, {"step": 4})
    assert [r["step"] for r in follower.poll()] == [1, 2, 3, 4]
    assert follower.poll() == runs.read_metrics(run)[0]


def test_a_rewritten_metrics_file_is_read_again_from_the_start(isolated_data_dir):
    run = make_run("a")
    follower = monitoring.MetricsFollower(run.metrics_path)
    append(run, *({"step": step} for step in range(1, 8)))
    shown = follower.poll()
    # A resume from checkpoint-4 rewrites the file without the later steps (a new file, renamed in).
    temp = run.metrics_path.with_suffix(".tmp")
    temp.write_text("".join(json.dumps({"step": step}) + "\n" for step in range(1, 5)))
    os.replace(temp, run.metrics_path)
    assert [r["step"] for r in follower.poll()] == [1, 2, 3, 4]
    assert len(shown) == 7  # a view handed out earlier keeps what it showed
    run.metrics_path.unlink()
    assert follower.poll() == []


def test_a_view_changes_version_exactly_when_what_it_shows_changes(isolated_data_dir):
    run = make_run("a")
    monitor = monitoring.RunMonitor()
    first = monitor.view("a")
    assert monitor.view("a").version == first.version
    append(run, {"step": 1, "loss": 2.0})
    second = monitor.view("a")
    assert second.version != first.version and second.records == [{"step": 1, "loss": 2.0}]
    runs.write_status(run, state="stopped", reason="asked to")
    third = monitor.view("a")
    assert third.version != second.version and third.summary["state"] == "stopped"
    with open(run.log_path, "a") as log:
        log.write("a line\n")
    assert monitor.view("a").version != third.version and monitor.view("a").log_tail == "a line"


def test_unchanged_runs_are_not_read_again(isolated_data_dir, counted):
    for name in ("a", "b", "c"):
        make_run(name)
    monitor = monitoring.RunMonitor()
    monitor.runs()
    monitor.view("a")
    before = dict(counted)
    for _ in range(5):
        monitor.runs()
        monitor.view("a")
    assert counted == before  # nothing changed on disk: no config or status parsed again
    runs.write_status(runs.Run(runs.runs_root() / "b"), state="completed")
    before = dict(counted)
    monitor.runs()
    assert counted == {"config": before["config"], "status": before["status"] + 1}  # b's status only


def test_the_list_matches_list_runs_and_follows_new_and_removed_runs(isolated_data_dir):
    first = make_run("first")
    runs.write_status(first, state="completed", best_eval_loss=1.5, started=1.0, ended=61.0)
    monitor = monitoring.RunMonitor()
    assert monitor.runs().summaries == runs.list_runs()
    time.sleep(0.01)  # a new folder must move the runs folder's mtime
    make_run("second")
    listing = monitor.runs()
    assert [s["name"] for s in listing.summaries] == ["second", "first"] and listing.summaries == runs.list_runs()
    (runs.runs_root() / "second" / "config.yaml").unlink()
    (runs.runs_root() / "second").rename(runs.runs_root() / ".gone")
    assert [s["name"] for s in monitor.runs().summaries] == ["first"]


def test_a_run_whose_process_died_is_shown_failed(isolated_data_dir):
    run = make_run("a")
    monitor = monitoring.RunMonitor()
    mark_running(run)
    assert monitor.view("a").active and monitor.runs().any_active
    mark_running(run, pid=dead_pid())
    view = monitor.view("a")
    assert view.summary["state"] == "failed" and "process died" in view.summary["reason"]
    assert not monitor.any_active()


def test_a_tick_sends_nothing_a_browser_already_shows(isolated_data_dir):
    run = make_run("a")
    mark_running(run)
    runs.write_status(run, started=time.time() - 600)  # 10.0 minutes for a while: the table shows tenths
    append(run, {"step": 1, "loss": 2.0, "total_steps": 10})
    *watched, table, shown, timer = run_watch.tick("a", None)
    assert "step 1 / 10" in watched[1] and list(table["run"]) == ["a"]
    assert timer.value == run_watch.WATCH_S  # a run is active: look often

    *watched, table, again, timer = run_watch.tick("a", shown)
    assert again == shown and all(
        isinstance(part, dict) and part.get("__type__") == "update" and len(part) == 1
        for part in [*watched, table, timer]
    )

    append(run, {"step": 2, "loss": 1.5, "total_steps": 10})
    *watched, table, shown, timer = run_watch.tick("a", again)
    assert "step 2 / 10" in watched[1]

    runs.write_status(run, state="completed", pid=None)
    *watched, table, shown, timer = run_watch.tick("a", shown)
    assert "completed" in watched[0] and timer.value == run_watch.IDLE_S  # nothing active: look rarely

    timer, shown = run_watch.hurry(shown)  # the person picks a run: look soon, then slow down again
    assert timer.value == run_watch.WATCH_S
    *watched, table, shown, timer = run_watch.tick("a", shown)
    assert timer.value == run_watch.IDLE_S and all(part == gr.skip() for part in [*watched, table])


def test_picking_a_run_shows_it_once(isolated_data_dir):
    run = make_run("a")
    append(run, {"step": 1, "loss": 2.0, "total_steps": 10})
    shown, timer = run_watch.watching("a", None)
    assert timer.value == run_watch.WATCH_S
    assert "step 1 / 10" in run_watch.run_view("a")[1]  # what the page shows next (the event's second step)
    *watched, table, shown, timer = run_watch.tick("a", shown)
    assert all(part == gr.skip() for part in watched) and list(table["run"]) == ["a"]  # the table was never sent
    assert timer.value == run_watch.IDLE_S  # nothing is active: slow down again

    shown, _ = run_watch.watching("a", shown)
    append(run, {"step": 2, "loss": 1.5, "total_steps": 10})  # moved between recording and showing
    *watched, table, shown, timer = run_watch.tick("a", shown)
    assert "step 2 / 10" in watched[1]  # the tick sends it: nothing is skipped


def test_the_queue_settings_quieted_are_the_ones_gradio_polls_with():
    import inspect

    from gradio import queueing

    import app

    loops = inspect.getsource(queueing.Queue.start_processing) + inspect.getsource(
        queueing.Queue.start_progress_updates
    )
    assert "self.sleep_when_free" in loops and "self.progress_update_sleep_when_free" in loops
    demo = app.quiet_queue(gr.Blocks().queue())
    assert demo._queue.sleep_when_free == app.QUEUE_IDLE_POLL_S


def test_a_checkpoint_counts_once_complete(isolated_data_dir):
    run = make_run("a")
    monitor = monitoring.RunMonitor()
    checkpoint = run.checkpoints_dir / "checkpoint-10"
    checkpoint.mkdir(parents=True)  # the trainer is still writing it
    assert not monitor.view("a").summary["resumable"]
    (checkpoint / "trainer_state.json").write_text("{}")  # written last: now complete
    runs.write_status(run, step=10)  # the trainer's next status write
    assert monitor.view("a").summary["resumable"] == runs.summarize(run)["resumable"] is True


def test_plots_take_each_curve_from_the_records_that_have_it():
    records = [
        {"step": 1, "loss": 3.0, "learning_rate": 1e-3},
        {"step": 2, "loss": 2, "eval_loss": 2.5},
        {"step": 3, "loss": None, "tokens_per_second": 900},
        {"loss": 9.0},
    ]
    loss, rate, speed = run_watch._plots(records, evaluates=True)
    assert loss.values.tolist() == [[1, 3.0, "train"], [2, 2.0, "train"], [2, 2.5, "eval"]]
    assert (
        loss["value"].dtype == float and rate.values.tolist() == [[1, 1e-3]] and speed.values.tolist() == [[3, 900.0]]
    )
    # Before the first evaluation, an undrawn eval point reserves the eval curve's colour.
    loss, rate, speed = run_watch._plots(records[:1], evaluates=True)
    assert loss["series"].tolist() == ["train", "eval"] and loss["value"].isna().tolist() == [False, True]
    assert speed is None and run_watch._plots([], evaluates=True) == (None, None, None)


def test_a_preference_round_plots_its_reward_margin_and_held_out_accuracy_with_the_loss():
    records = [
        {"step": 1, "loss": 0.6931, "rewards/margins": 0.0, "rewards/accuracies": 0.0},
        {"step": 2, "loss": 0.65, "rewards/margins": 0.2, "rewards/accuracies": 1.0},
        {"step": 2, "eval_loss": 0.66, "eval_rewards/accuracies": 0.75},
    ]
    loss, _, _ = run_watch._plots(records, evaluates=True)
    assert loss.values.tolist() == [
        [1, 0.6931, "train"],
        [2, 0.65, "train"],
        [2, 0.66, "eval"],
        [1, 0.0, "reward margin"],
        [2, 0.2, "reward margin"],
        [2, 0.75, "preference accuracy (eval)"],
    ]
    first, _, _ = run_watch._plots(records[:1], evaluates=True)  # every series present from the first draw
    assert first["series"].tolist() == ["train", "eval", "reward margin", "preference accuracy (eval)"]
