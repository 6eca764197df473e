"""The Hugging Face trainer a run trains with: TRL's SFTTrainer for causal models, a plain Trainer
with a seq2seq collator for encoder-decoders, and their arguments, each taken from the RunConfig.
"""

from __future__ import annotations

import sys
from typing import Any

from training.train.config import RunConfig
from training.train.runs import Run

# RunConfig's optimizer names (the UI's) -> transformers' names for them.
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "sgd": "sgd"}


def build_trainer(config: RunConfig, run: Run, loaded, hardware, train_set, eval_set, callbacks):
    """SFTTrainer for causal models, a plain Trainer with a seq2seq collator for encoder-decoders."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    arguments = trainer_arguments(config, run, loaded, hardware, has_eval=eval_set is not None)
    if config.is_preference:  # rows, not tokens: TRL tokenizes preference data itself
        from training.train.preference import build_trainer as build_preference_trainer

        return build_preference_trainer(config, loaded, arguments, train_set, eval_set, callbacks)
    common = dict(
        model=loaded.model,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=loaded.tokenizer,
        callbacks=callbacks,
    )
    if loaded.seq2seq:
        collator = DataCollatorForSeq2Seq(loaded.tokenizer, model=loaded.model, label_pad_token_id=-100)
        return Trainer(args=TrainingArguments(**arguments), data_collator=collator, **common)
    from trl import SFTConfig

    from training.train.sft import PortableSFTTrainer

    sft_arguments = SFTConfig(
        **arguments,
        # Rows arrive already cut to max_length; only packing still needs it, as the bin size.
        max_length=config.max_length if config.packing else None,
        packing=config.packing,
        padding_free=config.padding_free,
        completion_only_loss=config.completion_only_loss,
    )
    return PortableSFTTrainer(args=sft_arguments, **common)


def trainer_arguments(config: RunConfig, run: Run, loaded, hardware, has_eval: bool) -> dict[str, Any]:
    from training.train.methods import precision

    compute = precision(config, hardware)
    best_at_end = bool(config.early_stopping_patience and has_eval)
    return dict(
        output_dir=str(run.checkpoints_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio or config.warmup_steps,  # transformers 5: a float < 1 is a ratio
        weight_decay=config.weight_decay,
        optim=OPTIMIZERS[config.optimizer],
        neftune_noise_alpha=config.neftune_noise_alpha
        or None,  # transformers: None is off, 0 would hook the embeddings
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit or None,  # transformers: None keeps every checkpoint
        load_best_model_at_end=best_at_end,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        seed=config.seed,
        report_to=config.report_to,
        bf16=compute == "bf16",
        fp16=compute == "fp16",
        use_cpu=not hardware.cuda,
        # Unsloth brings its own (faster) checkpointing; asking transformers too would wrap it twice.
        gradient_checkpointing=config.activation_checkpointing and loaded.backend != "unsloth",
        gradient_checkpointing_kwargs={"use_reentrant": False},
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not sys.stderr.isatty(),  # progress bars would flood train.log
    )
