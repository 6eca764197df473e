"""One training run, start to finish, in its own process: `python -m training train <run>/config.yaml`.

Reads like the seeds' scripts: load tokenizer, data, model + method, build the trainer, train,
save to <run>/final/. Around it: status.json says what is happening and why it ended, metrics.jsonl
gets every log event, a STOP file stops at the next step, and checkpoints make a killed run resumable.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.train.config import RunConfig
from training.train.hf_trainer import build_trainer
from training.train.runs import (
    Run,
    claim_turn,
    create_run,
    is_alive,
    last_checkpoint,
    make_run_folder,
    process_identity,
    read_status,
    wait_for_turn,
    write_status,
)

OOM_HINT = (
    "lower batch_size (raise grad_accumulation to keep the effective batch), shorten max_length, "
    "turn on activation_checkpointing, or use method qlora on a GPU"
)
MIX_RECORD = "mix.json"  # the data sets a run drew from, their weights and the leak check (train/mixing.py)


class Terminated(BaseException):
    """SIGTERM arrived: end now, without saving (the last checkpoint remains for resume)."""


def is_main_process() -> bool:
    # Under `accelerate launch` every rank runs this file; only rank 0 writes the run folder.
    return int(os.environ.get("RANK", "0")) == 0


def run_folder(config: RunConfig) -> tuple[Run, RunConfig]:
    """The run folder for `config`, created with its config.yaml when the config does not name one."""
    if not config.output_dir:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError(
                "output: under accelerate launch pass --output DIR (or a run's config.yaml) so every "
                "process writes to the same run folder"
            )
        run = create_run(config)
        return run, run.config()
    config = config.with_absolute_paths()
    run = Run(Path(config.output_dir))
    if is_main_process():
        make_run_folder(run.path)
        config = dataclasses.replace(config, name=config.name or run.name)
        config.save(run.config_path, keep_retired=True)  # the folder records what actually ran, overrides included
    return run, config


def train(config: RunConfig, resume: bool = False, wait: bool = False) -> dict[str, Any]:
    """Train and return the final status (state completed | stopped | failed, reason, hint...).

    Problems found once the run folder exists end up in that status; only a config that cannot
    even name its folder, or a run already training in another process, raises UserError.
    """
    run, config = run_folder(config)
    current = read_status(run)
    if current.get("state") in ("running", "stopping") and current.get("pid") != os.getpid() and is_alive(run):
        raise UserError(f"run {run.name}: already running (pid {current['pid']}); stop it first")
    status = _StatusWriter(run, enabled=is_main_process())
    if wait and not wait_for_turn(run):
        return status.write(state="stopped", reason="stopped while queued", ended=time.time())
    if not wait and is_main_process():
        claim_turn(run)
    if is_main_process():
        run.stop_path.unlink(missing_ok=True)
    status.write(
        state="running",
        pid=os.getpid(),
        pid_started=process_identity(os.getpid()),
        started=time.time(),
        ended=None,
        reason="",
        hint=None,
        resumable=False,
    )
    previous_handler = _on_sigterm_raise()
    try:
        outcome = _train(config, run, resume, status)
        return status.write(**outcome, ended=time.time())
    except UserError as error:
        return _ended(status, run, "failed", str(error), kind="user")
    except Terminated:
        return _ended(status, run, "stopped", "terminated (SIGTERM) before saving")
    except Exception as error:  # noqa: BLE001 - a run must always end with a status a person can read
        _log_traceback(run)
        if _is_out_of_memory(error):
            return _ended(status, run, "failed", "out of memory", kind="oom", hint=OOM_HINT)
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        return _ended(
            status, run, "failed", f"{type(error).__name__}: {first_line} (details in train.log)", kind="crash"
        )
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _ended(status: _StatusWriter, run: Run, state: str, reason: str, **fields: Any) -> dict[str, Any]:
    resumable = last_checkpoint(run) is not None
    return status.write(state=state, reason=reason, resumable=resumable, ended=time.time(), **fields)


def _train(config: RunConfig, run: Run, resume: bool, status: _StatusWriter) -> dict[str, Any]:
    hardware = _ready_to_train(config)
    # After _ready_to_train: these import transformers and TRL, which Unsloth must patch first.
    from training.train.callbacks import (
        AdaLoraAllocationCallback,
        MetricsCallback,
        StopFileCallback,
    )

    checkpoint = last_checkpoint(run) if resume else None
    if resume and checkpoint is None:
        raise UserError(f"run {run.name}: no checkpoint to resume from; start it again instead")
    prepare = _preference_round if config.is_preference else _supervised
    config, loaded, prompt, train_set, eval_set, dropped = prepare(config, run, resume, hardware)
    device = "cuda" if hardware.cuda else "cpu"
    print(
        f"talklike: training {config.method} on {device} with {loaded.backend}, {len(train_set)} examples"
        f" ({dropped} dropped: no reply left within max_length), template {loaded.template}",
        flush=True,
    )
    status.write(backend=loaded.backend, backend_note=loaded.backend_note, device=device, examples=len(train_set))

    stop, metrics = StopFileCallback(run), MetricsCallback(run)
    callbacks = [metrics, stop] + ([AdaLoraAllocationCallback()] if config.method == "adalora" else [])
    if config.early_stopping_patience and eval_set is not None:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    if config.report_to == "tensorboard":  # beside the run's other files, not under checkpoints/
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    trainer = build_trainer(config, run, loaded, hardware, train_set, eval_set, callbacks)
    if checkpoint is not None and is_main_process():
        _forget_metrics_after(run, checkpoint)
    with warnings.catch_warnings():
        # AdaLoRA prunes some modules to rank 0; peft then warns on every save that the empty tensors
        # look like unsharded DeepSpeed weights. They are not: the adapter reloads exactly.
        warnings.filterwarnings("ignore", message=r".*LoRA tensor\(s\) have invalid shape")
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        trainer.save_model(str(run.final_dir))
    if is_main_process():
        loaded.tokenizer.save_pretrained(run.final_dir)
        _write_model_info(run, config, loaded, prompt)
    return _outcome(run, trainer, result, stop, metrics, resumed_from=checkpoint)


def _supervised(config: RunConfig, run: Run, resume: bool, hardware):
    """(config, loaded, prompt, train set, eval set, rows dropped) of a supervised run: tokenized rows, model + method."""
    from training.train import methods
    from training.train.dataset import causal_dataset, load_rows, seq2seq_dataset, update_steps

    rows = load_rows(config)
    if is_main_process():
        (run.path / MIX_RECORD).write_text(json.dumps(rows.mix, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    leaks = rows.mix["leak_check"]
    print(
        f"talklike: leak check: {leaks['leaked']} of {leaks['validation_rows']} validation rows found in the training "
        f"data ({leaks['dropped']} dropped)",
        flush=True,
    )
    loaded = methods.load_tokenizer(config, hardware)
    prompt = _prompt_settings(run, config, resume, loaded.seq2seq)
    to_dataset = functools.partial(seq2seq_dataset, separator=prompt.separator) if loaded.seq2seq else causal_dataset
    train_set, dropped = to_dataset(loaded.tokenizer, rows.train, config)
    eval_set = to_dataset(loaded.tokenizer, rows.validation, config)[0] if rows.validation else None
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    methods.load_model(loaded, config, hardware, update_steps(len(train_set), config, world_size))
    return config, loaded, prompt, train_set, eval_set, dropped


def _preference_round(config: RunConfig, run: Run, resume: bool, hardware):
    """The same for a DPO/KTO round on the from_run's adapter (train/preference.py); rows stay rows."""
    from training.train import preference

    start = preference.starting_run(config)
    config = preference.round_config(config, start)
    rows = preference.load_preference_rows(config)
    if is_main_process():  # config.yaml says which base and template the round trained with
        config.save(run.config_path, keep_retired=True)
    loaded = preference.load_for_round(config, start, hardware)
    print(
        f"talklike: {config.method} round on {start.name}'s adapter (reference: that adapter, frozen), "
        f"beta {config.beta}{f', rpo_alpha {config.rpo_alpha}' if config.rpo_alpha else ''}, "
        f"{len(rows.train)} training rows, {len(rows.validation)} held out",
        flush=True,
    )
    # Chat after the round builds its prompts as the starting run did.
    return config, loaded, start.prompt, rows.train, rows.validation or None, 0


def _ready_to_train(config: RunConfig):
    """Validate, import Unsloth before anything imports transformers, and refuse what this machine
    cannot do before anything is loaded; return the Hardware."""
    from training.train import methods

    config.validate()
    hardware = methods.Hardware.detect()
    methods.import_unsloth_first(config, hardware)
    methods.check_environment(config, hardware)
    _quiet_progress_bars()
    return hardware


def _outcome(run: Run, trainer, result, stop, metrics, resumed_from: Path | None) -> dict[str, Any]:
    stopped_at = trainer.state.global_step
    early = not stop.stopped and stopped_at < trainer.state.max_steps
    return {
        "state": "stopped" if stop.stopped else "completed",
        "reason": f"stopped at step {stopped_at} (STOP)"
        if stop.stopped
        else "early stopping: eval loss stopped improving; final/ holds the best checkpoint"
        if early
        else "",
        "step": stopped_at,
        "total_steps": trainer.state.max_steps,
        "train_loss": _mean_step_loss(result.training_loss, stopped_at, _step_of_checkpoint(resumed_from)),
        "best_eval_loss": metrics.best_eval_loss,
        "final_dir": str(run.final_dir),
        "resumable": stop.stopped,
    }


class _StatusWriter:
    def __init__(self, run: Run, enabled: bool):
        self.run, self.enabled = run, enabled
        self.last: dict[str, Any] = {}

    def write(self, **fields: Any) -> dict[str, Any]:
        self.last = write_status(self.run, **fields) if self.enabled else {**self.last, **fields}
        return self.last


def _quiet_progress_bars() -> None:
    # Loading and mapping bars are for terminals; in train.log they are thousands of \r-lines.
    if not sys.stderr.isatty():
        import datasets
        import transformers

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def _on_sigterm_raise():
    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a UI calling train() in-process): keep the default
        return None


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _log_traceback(run: Run) -> None:
    # Appended, not printed: the person sees one line (status, CLI), the log keeps the details.
    if is_main_process():
        with open(run.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} training failed ---\n{traceback.format_exc()}\n")


def _step_of_checkpoint(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0


def _mean_step_loss(training_loss: float, global_step: int, resumed_from: int) -> float | None:
    """The mean loss per step over the steps this process trained.

    transformers divides the loss summed since the resume by every step of the run, the steps
    before the resume included (a run resumed at step 4 of 12 would report 2/3 of its loss).
    """
    trained = global_step - resumed_from
    return training_loss * global_step / trained if trained > 0 else None


def _forget_metrics_after(run: Run, checkpoint: Path) -> None:
    """Drop metrics past the checkpoint a resume restarts from, so each step is plotted once.

    The file is rewritten: a reader tailing it should restart from line 0 after a resume.
    """
    step = _step_of_checkpoint(checkpoint)
    if not run.metrics_path.exists():
        return
    kept = [
        line
        for line in run.metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.endswith("\n") and _step_of(line) <= step
    ]
    temp = run.metrics_path.with_suffix(".jsonl.tmp")
    temp.write_text("".join(kept), encoding="utf-8")
    os.replace(temp, run.metrics_path)


def _step_of(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except (json.JSONDecodeError, AttributeError):
        return float("inf")


def _prompt_settings(run: Run, config: RunConfig, resume: bool, seq2seq: bool):
    """The prompt settings of the data (its manifest, copied into the run folder), said in the log."""
    from training.train.run_record import record_manifest, run_manifest, run_prompt

    manifest = record_manifest(run, config, resume) if is_main_process() else run_manifest(run, config)
    prompt = run_prompt(run, config, manifest, seq2seq)
    origin = "the data's manifest" if manifest is not None else "defaults (the data has no .persona.json manifest)"
    context = f"{prompt.context_turns} earlier turns" if prompt.context_turns else "every earlier turn"
    print(
        f"talklike: prompts from {origin}: messages joined with {prompt.separator!r}, {context}, "
        f"{'a' if prompt.system_prompt else 'no'} system prompt",
        flush=True,
    )
    if seq2seq and "\n" in prompt.separator:
        print(
            "talklike: note: seq2seq tokenizers may turn newlines into spaces, erasing message boundaries; "
            "seed 000 prepared its data with --separator '|'",
            flush=True,
        )
    return prompt


def _write_model_info(run: Run, config: RunConfig, loaded, prompt) -> None:
    """final/talklike.json: what chat and export need to use the result the way it was trained."""
    from training.train.run_record import model_info, write_model_info

    fields = {
        "base_model": loaded.source,
        "model": config.model,
        "method": config.method,
        "seq2seq": loaded.seq2seq,
        "chat_template": loaded.template,
        "max_length": config.max_length,
        "run": run.name,
    }
    write_model_info(run.final_dir, model_info(prompt, fields))
