"""A small hyperparameter sweep in the spirit of seed 003: a grid over rank, alpha, learning rate
and batch size, queued as ordinary runs and ranked by their best eval loss."""

from __future__ import annotations

import dataclasses
import itertools

from training.errors import UserError
from training.train.config import RunConfig
from training.train.runs import Run, create_run, list_runs, start

MAX_SWEEP_RUNS = 24  # a grid beyond this is a typo, not a plan, on one machine


def sweep_configs(
    base: RunConfig,
    ranks: list[int],
    alpha_ratios: list[float],
    learning_rates: list[float],
    batch_sizes: list[int],
    name: str,
) -> list[RunConfig]:
    """Every combination; alpha is given as a multiple of the rank (seed 003 tried 1x, 1.5x, 2x)."""
    grid = list(
        itertools.product(
            ranks or [base.lora_r],
            alpha_ratios or [base.lora_alpha / base.lora_r],
            learning_rates or [base.learning_rate],
            batch_sizes or [base.batch_size],
        )
    )
    if len(grid) > MAX_SWEEP_RUNS:
        raise UserError(f"sweep: {len(grid)} runs is more than {MAX_SWEEP_RUNS}; narrow the lists")
    if not base.has_validation:
        raise UserError("sweep: runs are ranked by eval loss, so they need a validation file or validation_split")
    configs = []
    for rank, ratio, rate, batch in grid:
        label = f"{name}-r{rank}-a{ratio:g}x-lr{rate:g}-b{batch}"
        configs.append(
            dataclasses.replace(
                base,
                name=label,
                output_dir="",
                lora_r=rank,
                lora_alpha=max(1, round(rank * ratio)),
                learning_rate=rate,
                batch_size=batch,
            ).validate()
        )
    return configs


def queue_sweep(configs: list[RunConfig]) -> list[Run]:
    """Create and queue every run: they train one after another."""
    runs = [create_run(config) for config in configs]
    for run in runs:
        start(run, queue=True)
    return runs


def ranking(prefix: str) -> list[dict]:
    """The sweep's runs, best eval loss first (runs without one yet last)."""
    runs = [run for run in list_runs() if run["name"].startswith(prefix + "-")]
    return sorted(runs, key=lambda run: (run["best_eval_loss"] is None, run["best_eval_loss"] or 0.0))


def parse_numbers(text: str, field: str, kind=float) -> list:
    """'8, 16 32' -> [8, 16, 32], with a message naming the field on a typo."""
    try:
        return [kind(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise UserError(f"{field}: {text!r}; expected numbers separated by commas, like 8, 16, 32") from None
