"""A preference round (DPO or KTO) on top of a finished LoRA run, through TRL's trainers.

The round starts from the run named by `from_run`: the same base model, that run's adapter loaded
trainable, its tokenizer and chat template, and the prompt settings it chatted with. The reference
model is that run frozen: given a peft model with a trained adapter and no ref_model, TRL 1.15 adds a
frozen copy of the adapter ("ref") and computes the reference log-probabilities with it, so the
reference costs one more adapter (megabytes) and one more forward pass per sequence, not a second
model. (Older TRL used the base with the adapter off; the reference DPO derives its loss from is the
SFT model, which the copy is.)

Data (`train_file`) is TRL's conversational preference format, as `python -m training pairs` writes:
    dpo  {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}
    kto  {"prompt": [messages], "completion": [assistant message], "label": true|false}
held out like SFT data (validation_file, or validation_split of the pairs), so TRL's eval logs
rewards/accuracies (how often the chosen reply gets the larger reward) on pairs it never trained on.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.train.config import RunConfig

STARTING_METHODS = ("lora", "dora", "rslora")  # adapters that reload trainable in full precision
ROW_KEYS = {"dpo": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label")}
ROLES = ("system", "user", "assistant")
REFERENCE_ADAPTER = "ref"  # the name TRL gives the frozen copy of the starting adapter


# ---- the starting run -----------------------------------------------------------------------------


def starting_run(config: RunConfig):
    """The finished run a preference round starts from, or UserError saying why it cannot."""
    from training.train.run_record import read_run

    if not config.from_run:
        raise UserError(
            f"from_run: empty; method {config.method} trains a finished run's adapter further: name that run"
        )
    try:
        record = read_run(config.from_run)
    except UserError:
        raise UserError(f"from_run: {config.from_run} is not a run folder (no config.yaml)") from None
    if record.model is None:
        state = record.status.get("state", "created")
        raise UserError(f"from_run: {record.name} has no trained model in final/ yet (it is {state}); finish it first")
    if record.seq2seq:
        raise UserError(
            f"from_run: {record.name} is an encoder-decoder (seq2seq) model; TRL's {config.method} "
            "trainer takes causal chat models"
        )
    if not record.adapter or record.config.method not in STARTING_METHODS:
        raise UserError(
            f"from_run: {record.name} was trained with method {record.config.method}; a {config.method} round "
            f"trains a LoRA adapter further, so start from a {', '.join(STARTING_METHODS)} run"
        )
    return record


def round_config(config: RunConfig, record) -> RunConfig:
    """The config as it trains: the starting run's base model and template (config.yaml records them).

    Packing and padding-free batches are switched off: TRL's preference trainers pad their batches
    (its DPO padding-free path is disabled in 1.15), and a recipe started from may have them on.
    """
    if config.packing or config.padding_free:
        print(f"talklike: packing/padding_free off: TRL's {config.method} trainer pads its batches", flush=True)
    return dataclasses.replace(
        config,
        model=record.config.model,
        chat_template=record.config.chat_template,
        from_run=str(record.path),
        packing=False,
        padding_free=False,
    )


# ---- data -----------------------------------------------------------------------------------------


def read_preference_rows(path: str | Path, method: str, field: str = "train_file") -> list[dict[str, Any]]:
    """The rows of a pairs file, each checked: a UserError names the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{field}: {path} does not exist; write it with python -m training pairs RUN --out {path.name}")
    from training.data.jsonl import records

    rows = [_checked_row(row, method, where) for where, row in records(path)]
    if not rows:
        raise UserError(f"{path.name}: no rows; expected {_shape(method)} per line")
    return rows


def _shape(method: str) -> str:
    return "{" + ", ".join(ROW_KEYS[method]) + "}"


def _checked_row(row: Any, method: str, where: str) -> dict[str, Any]:
    if not isinstance(row, dict) or any(key not in row for key in ROW_KEYS[method]):
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        hint = (
            " (use --kto when writing the pairs)"
            if method == "kto" and isinstance(row, dict) and "chosen" in row
            else ""
        )
        raise UserError(f"{where}: expected {_shape(method)} for method {method}, got {keys}{hint}")
    if not _is_messages(row["prompt"]) or row["prompt"][-1]["role"] != "user":
        raise UserError(f"{where}: prompt: expected a list of {{role, content}} messages ending with the user's")
    for key in ROW_KEYS[method][1:]:
        if key == "label":
            if not isinstance(row["label"], bool):
                raise UserError(f"{where}: label: {row['label']!r}; expected true (desirable) or false")
        elif not (_is_messages(row[key]) and all(m["role"] == "assistant" for m in row[key])):
            raise UserError(
                f'{where}: {key}: expected a list with the assistant\'s reply, like [{{"role": "assistant", "content": "..."}}]'
            )
    return {key: row[key] for key in ROW_KEYS[method]}


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in value)
    )


def load_preference_rows(config: RunConfig):
    """Training and held-out rows, split as SFT rows are (dataset.load_rows)."""
    from training.train.dataset import Rows

    train = read_preference_rows(config.train_file, config.method)
    if config.validation_file:
        return Rows(train, read_preference_rows(config.validation_file, config.method, "validation_file"))
    if not config.validation_split:
        return Rows(train, [])
    shuffled = random.Random(config.seed).sample(train, len(train))
    held_out = max(1, round(len(train) * config.validation_split))
    if held_out >= len(train):
        raise UserError(f"validation_split: {config.validation_split} leaves no training rows out of {len(train)}")
    return Rows(shuffled[held_out:], shuffled[:held_out])


# ---- model and trainer ----------------------------------------------------------------------------


def load_for_round(config: RunConfig, record, hardware):
    """The starting run's base model with its adapter trainable, and its tokenizer (chat template included)."""
    from peft import PeftModel

    from training.train import methods

    tokenizer = methods._load_tokenizer(str(record.final_dir), config)
    template = methods._ensure_template(tokenizer, config)
    base = methods._load_model(config, record.base_model, False, methods.precision(config, hardware))
    if config.activation_checkpointing:
        base.enable_input_require_grads()
    model = PeftModel.from_pretrained(base, str(record.final_dir), is_trainable=True)
    return methods.Loaded(model, tokenizer, record.base_model, False, "transformers+peft", template)


def build_trainer(config: RunConfig, loaded, arguments: dict[str, Any], train_rows, eval_rows, callbacks):
    """TRL's DPOTrainer or KTOTrainer over the rows (TRL applies the chat template and the reference)."""
    from datasets import Dataset

    from training.train.logprobs import use_portable_log_probs

    use_portable_log_probs()
    common = dict(
        model=loaded.model,
        processing_class=loaded.tokenizer,
        callbacks=callbacks,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
    )
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer, settings = DPOTrainer, DPOConfig(**arguments, **dpo_loss(config), max_length=config.max_length)
    else:
        from trl import KTOConfig, KTOTrainer

        trainer, settings = KTOTrainer, KTOConfig(**arguments, beta=config.beta, max_length=config.max_length)
    return _saving_the_trained_adapter_only(trainer)(args=settings, **common)


def dpo_loss(config: RunConfig) -> dict[str, Any]:
    """DPOConfig's loss settings: the sigmoid DPO loss, plus the chosen reply's NLL when rpo_alpha is set.

    TRL 1.15 has no `rpo_alpha` (older TRL did); RPO (Pang et al. 2024) is its loss list ["sigmoid", "sft"]
    weighted [1, rpo_alpha], the "sft" term being the mean NLL per token of the chosen replies.
    """
    if not config.rpo_alpha:
        return {"beta": config.beta}
    return {"beta": config.beta, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, config.rpo_alpha]}


def _saving_the_trained_adapter_only(trainer_class):
    """The trainer, writing checkpoints and final/ without TRL's frozen "ref" adapter folder.

    peft saves every adapter, the extra ones in subfolders; transformers 5.17 resuming from a
    checkpoint that has adapter subfolders loads only those, so a resumed round would go on from the
    reference (the starting run's weights) instead of its own. The copy is the starting run's
    adapter, already on disk in from_run, and TRL makes it again when the trainer starts.
    """

    class TrainedAdapterOnly(trainer_class):
        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            shutil.rmtree(Path(output_dir or self.args.output_dir) / REFERENCE_ADAPTER, ignore_errors=True)

    return TrainedAdapterOnly
