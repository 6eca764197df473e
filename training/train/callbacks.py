"""TrainerCallbacks that turn a training process into a run folder the UI can read and steer.

Only the main process (rank 0 under `accelerate launch`) writes files; every rank checks STOP so
they all stop at the same step.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import psutil
import torch
from transformers import TrainerCallback

from training.train.runs import Run, write_status

# Every metrics.jsonl line has these keys (null where not measured); other numeric log entries pass through.
METRIC_KEYS = (
    "step",
    "epoch",
    "loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "elapsed",
    "eta",
    "memory_mb",
    "total_steps",
)


def memory_mb() -> float:
    """Peak CUDA memory where training runs on a GPU, else this process's resident memory."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(psutil.Process().memory_info().rss / 2**20, 1)


class MetricsCallback(TrainerCallback):
    """Appends one JSON object per log event to metrics.jsonl and keeps status.json's progress."""

    def __init__(self, run: Run):
        self.run = run
        self.best_eval_loss: float | None = None
        self._started = time.time()
        self._first_step = 0
        self._last_time = self._started
        self._last_tokens = 0
        self._elapsed_before = 0.0  # training time of the processes before a resume

    def on_train_begin(self, args, state, control, **kwargs):
        # After a resume, speed and ETA count only the steps this process ran; elapsed goes on
        # from where the run's metrics left it (the lines up to the checkpoint it resumed from).
        self._started = self._last_time = time.time()
        self._first_step = state.global_step
        self._last_tokens = state.num_input_tokens_seen or 0
        self._elapsed_before = _last_elapsed(self.run, state.global_step) if state.global_step else 0.0
        self.best_eval_loss = state.best_metric if args.metric_for_best_model == "eval_loss" else None
        if state.is_world_process_zero:
            write_status(self.run, step=state.global_step, total_steps=state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = self._record(state, logs)
        with open(self.run.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        if record["eval_loss"] is not None and (
            self.best_eval_loss is None or record["eval_loss"] < self.best_eval_loss
        ):
            self.best_eval_loss = record["eval_loss"]
        write_status(self.run, step=state.global_step, total_steps=state.max_steps, best_eval_loss=self.best_eval_loss)

    def _record(self, state, logs: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        tokens = state.num_input_tokens_seen or 0
        interval = now - self._last_time
        speed = (tokens - self._last_tokens) / interval if interval > 0 and "loss" in logs else None
        if "loss" in logs:  # speed is measured between training logs; eval events keep the last window
            self._last_time, self._last_tokens = now, tokens
        done = state.global_step - self._first_step
        elapsed = now - self._started
        eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
        record = {
            "step": state.global_step,
            "epoch": _number(logs.get("epoch", state.epoch)),
            "loss": _number(logs.get("loss")),
            "eval_loss": _number(logs.get("eval_loss")),
            "learning_rate": _number(logs.get("learning_rate")),
            "grad_norm": _number(logs.get("grad_norm")),
            "tokens_per_second": round(speed, 1) if speed is not None else None,
            "elapsed": round(self._elapsed_before + elapsed, 2),
            "eta": round(eta, 1) if eta is not None else None,
            "memory_mb": memory_mb(),
            "total_steps": state.max_steps,
            "time": now,
        }
        extra = {key: _number(value) for key, value in logs.items() if key not in record and _number(value) is not None}
        return {**record, **extra}


def _last_elapsed(run: Run, up_to_step: int) -> float:
    """The elapsed time logged last at or before `up_to_step` (0 when nothing was logged)."""
    elapsed = 0.0
    try:
        lines = run.metrics_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return elapsed
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and (record.get("step") or 0) <= up_to_step and _number(record.get("elapsed")):
            elapsed = max(elapsed, _number(record["elapsed"]))
    return elapsed


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class StopFileCallback(TrainerCallback):
    """Stops at the end of the step during which <run>/STOP appeared, saving a checkpoint there."""

    def __init__(self, run: Run):
        self.run = run
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.run.stop_path.exists():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
        return control


class AdaLoraAllocationCallback(TrainerCallback):
    """Runs AdaLoRA's rank allocation after every optimizer step.

    Neither Trainer nor TRL calls update_and_allocate; without it AdaLoRA silently stays a fixed-rank
    LoRA. It must run in on_optimizer_step, while gradients still exist (on_step_end crashes on them).
    """

    def __init__(self):
        self.calls = 0

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        peft_model = _unwrap(model)
        peft_model.base_model.update_and_allocate(state.global_step)
        self.calls += 1


def _unwrap(model):
    # accelerate may wrap the model (DDP); AdaLoraModel sits under the PeftModel either way.
    while hasattr(model, "module") and not hasattr(model, "base_model"):
        model = model.module
    return model
