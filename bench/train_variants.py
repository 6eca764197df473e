"""bench_train.py's contenders: the same LoRA run built four ways, timed step by step, with the
tokens each trains compared (seed-004's padded Trainer, bare TRL with and without its gradient
checkpointing, talklike's own path)."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time
from pathlib import Path

from transformers import TrainerCallback

from training.train.config import RunConfig

WARMUP_STEPS = 3  # the first steps build kernels and optimizer state; they are not timed

VARIANTS = {
    "a": "(a) seed-004 Trainer, padded to max_length",
    "b": "(b) bare TRL SFTTrainer defaults",
    "b_nockpt": "(b') TRL defaults, gradient checkpointing off",
    "c": "(c) talklike persona-small path",
}


# ---- measuring ----------------------------------------------------------------------------------------


class StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


class CountingCollator:
    """Wraps a trainer's collator and records, per batch in order: fed positions, real tokens, trained tokens.

    Batches are collated in step order (the loader may fetch one ahead, so counting up to "now"
    would be off by a batch; indexing by step is not).
    """

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[tuple[int, int, int]] = []

    def __call__(self, features):
        batch = self.inner(features)
        ids = batch["input_ids"]
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        self.batches.append((ids.numel(), real, int((batch["labels"] != -100).sum())))
        return batch


def measure(trainer, clock: StepClock) -> dict:
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    result = trainer.train()
    steps = len(clock.ends)
    timed = counter.batches[WARMUP_STEPS:steps]
    return {
        "step_seconds": [end - start for start, end in zip(clock.ends[WARMUP_STEPS - 1 :], clock.ends[WARMUP_STEPS:])],
        "step_fed": [fed for fed, _, _ in timed],
        "step_real": [real for _, real, _ in timed],
        "step_trained": [trained for _, _, trained in timed],
        "train_loss": result.training_loss,
    }


# ---- the variants ---------------------------------------------------------------------------------------


def lora_config(config: RunConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias="none",
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )


def seed004_dataset(tokenizer, rows: list[dict], max_length: int):
    """Seed 004's preparation: render, tokenize with padding="max_length"; labels only on my reply."""
    from datasets import Dataset

    columns = {"input_ids": [], "attention_mask": [], "labels": []}
    for row in rows:
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        encoded = tokenizer(
            full, padding="max_length", truncation=True, max_length=max_length, add_special_tokens=False
        )
        reply_from = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = [
            token if reply_from <= index and mask else -100
            for index, (token, mask) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"]))
        ]
        for key, value in (*encoded.items(), ("labels", labels)):
            columns[key].append(value)
    return Dataset.from_dict(columns)


def same_settings(config: RunConfig, out: Path) -> dict:
    """What (a) and (b) are given alike: the run's steps, batch, learning rate and seed; no saving or logging."""
    return dict(
        output_dir=str(out),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        seed=config.seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )


def build_seed004(config: RunConfig, rows: list[dict], out: Path, clock: StepClock):
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(config.model), lora_config(config))
    arguments = TrainingArguments(**same_settings(config, out))
    dataset = seed004_dataset(tokenizer, rows, config.max_length)
    return Trainer(
        model=model, args=arguments, train_dataset=dataset, data_collator=default_data_collator, callbacks=[clock]
    )


def build_bare_trl(config: RunConfig, rows: list[dict], out: Path, clock: StepClock, checkpointing: bool = True):
    """SFTTrainer defaults, except: bf16=False (a bare SFTConfig asks for bf16, which fails on CPU;
    fp32 keeps all variants at one precision) and the CPU loss (TRL 1.15's fused loss needs Triton)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from training.train.sft import PortableSFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    arguments = SFTConfig(
        **same_settings(config, out),
        bf16=False,
        **({} if checkpointing else {"gradient_checkpointing": False}),
    )
    return PortableSFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(config.model),
        args=arguments,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[clock],
    )


def build_talklike(config: RunConfig, rows: list[dict], out: Path, clock: StepClock):
    """What `python -m training train` does (training/train/trainer.py _train), minus status.json bookkeeping."""
    from training.train import methods
    from training.train.callbacks import MetricsCallback, StopFileCallback
    from training.train.dataset import causal_dataset, update_steps
    from training.train.trainer import build_trainer, run_folder

    run, config = run_folder(dataclasses.replace(config, output_dir=str(out)))
    hardware = methods.Hardware.detect()
    loaded = methods.load_tokenizer(config, hardware)
    train_set, _ = causal_dataset(loaded.tokenizer, rows, config)
    methods.load_model(loaded, config, hardware, update_steps(len(train_set), config))
    callbacks = [MetricsCallback(run), StopFileCallback(run), clock]
    return build_trainer(config, run, loaded, hardware, train_set, None, callbacks)


BUILDERS = {
    "a": build_seed004,
    "b": build_bare_trl,
    "b_nockpt": lambda *args: build_bare_trl(*args, checkpointing=False),
    "c": build_talklike,
}


def run_variant(key: str, config: RunConfig, rows: list[dict], out: Path) -> dict:
    clock = StepClock()
    trainer = BUILDERS[key](config, rows, out / key, clock)
    try:
        return measure(trainer, clock)
    finally:
        del trainer
        gc.collect()


# ---- identical loss masks -------------------------------------------------------------------------------


def trained_tokens(trainer, batch_size: int = 8) -> list[tuple[int, ...]]:
    """Per example, in dataset order, the token ids the loss sees, read from the trainer's own collated labels."""
    dataset, collate = trainer.train_dataset, trainer.data_collator
    examples = []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[index] for index in range(start, min(start + batch_size, len(dataset)))])
        labels = batch["labels"]
        if "position_ids" in batch and "attention_mask" not in batch:  # padding-free: one flat row
            starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [labels.shape[1]]
            rows = [labels[0, begin:end] for begin, end in itertools.pairwise(starts)]
        else:
            rows = list(labels)
        examples += [tuple(row[row != -100].tolist()) for row in rows]
    return examples


def check_same_loss_masks(config: RunConfig, rows: list[dict], out: Path) -> int:
    """Assert every variant trains exactly the same tokens of every example; return the count of trained tokens."""
    masks = {}
    for key in VARIANTS:
        trainer = BUILDERS[key](config, rows, out / f"mask-{key}", StepClock())
        masks[key] = trained_tokens(trainer)
        del trainer
    reference = masks["c"]
    for key, mask in masks.items():
        assert len(mask) == len(reference), f"{key}: {len(mask)} examples, talklike {len(reference)}"
        differing = [index for index, (mine, theirs) in enumerate(zip(mask, reference)) if mine != theirs]
        assert not differing, f"{key}: loss mask differs from talklike's on examples {differing[:5]}"
    return sum(len(example) for example in reference)
