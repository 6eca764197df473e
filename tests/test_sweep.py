"""Seed 003's manual search: a grid queued as ordinary runs, ranked by eval loss."""

import time

import pytest

from tests.train_fixtures import tiny_config
from training.errors import UserError
from training.train import runs, sweep


def test_grid_names_and_alpha_as_a_multiple_of_rank(tmp_path, llama, data):  # noqa: F811
    base = tiny_config(tmp_path, llama, data, validation_file=str(data["validation"]), output_dir="")
    configs = sweep.sweep_configs(base, [4, 8], [1, 2], [1e-3], [8], "grid")
    assert [(c.lora_r, c.lora_alpha) for c in configs] == [(4, 4), (4, 8), (8, 8), (8, 16)]
    assert [c.name for c in configs][0] == "grid-r4-a1x-lr0.001-b8"
    with pytest.raises(UserError, match="more than 24"):
        sweep.sweep_configs(base, list(range(1, 6)), [1, 2, 3], [1e-3, 2e-3], [1], "huge")
    with pytest.raises(UserError, match="eval loss"):
        sweep.sweep_configs(tiny_config(tmp_path, llama, data, output_dir=""), [4], [1], [1e-3], [8], "noval")
    with pytest.raises(UserError, match="Ranks: '8, x'"):
        sweep.parse_numbers("8, x", "Ranks", int)


def test_queued_runs_train_one_after_another_and_are_ranked(tmp_path, llama, data):  # noqa: F811
    base = tiny_config(tmp_path, llama, data, validation_file=str(data["validation"]), output_dir="", max_steps=4)
    queued = sweep.queue_sweep(sweep.sweep_configs(base, [2, 8], [2], [3e-3], [8], "rank"))
    deadline = time.time() + 240
    while time.time() < deadline and any(runs.refresh(run).get("state") in runs.ACTIVE_STATES for run in queued):
        time.sleep(1)
    states = [runs.read_status(run) for run in queued]
    assert [s["state"] for s in states] == ["completed", "completed"], [s.get("reason") for s in states]
    assert states[0]["ended"] <= states[1]["started"] + 1  # the queue ran them in turn, not together
    ranked = sweep.ranking("rank")
    losses = [r["best_eval_loss"] for r in ranked]
    assert len(ranked) == 2 and losses == sorted(losses)
