"""The persona stage's JSONL rows, read, split and tokenized for one run.

Row shapes (what training/data/persona.py writes, and what TRL calls them):
  {"prompt": [messages], "completion": [{"role": "assistant", ...}]}  conversational prompt-completion
  {"text": "..."}                                                      plain language modelling
  {"messages": [...]}   conversational (seed 003's format): one prompt-completion row per assistant
                        turn, so the loss still covers only my replies
Causal models tokenize with templates.tokenize_row, which reproduces TRL's own preparation token for
token, so the loss-mask preview in the UI is exactly what trains; seq2seq models (BlenderBot, seed
000) get the prompt's messages joined with the persona's separator as the encoder input and my reply
as target.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.jsonl import records
from training.data.leaks import LeakReport, apply_policy, find_leaks
from training.data.persona import validation_path
from training.errors import UserError
from training.prompting import seq2seq_source
from training.templates import tokenize_row
from training.train.config import RunConfig
from training.train.mixing import MixEntry, Source, describe, interleave, parse_entry


@dataclass
class Rows:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    mix: dict[str, Any] = field(default_factory=dict)  # the sets, their weights and the leak check (mix.json)
    validation_sources: list[str] = field(default_factory=list)  # the data set each validation row came from


def read_rows(path: str | Path, field: str = "train_file") -> list[dict[str, Any]]:
    """Rows of a JSONL file, each checked to be a chat row or a text row."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{field}: {path} does not exist; run the data step first or pick another file")
    rows = []
    for where, row in records(path):
        _check_row(row, where)
        rows.extend(_split_messages(row) if "messages" in row else [row])
    if not rows:
        raise UserError(f"{path.name}: no rows; expected JSONL with prompt/completion or text rows")
    return rows


def _check_row(row: Any, where: str) -> None:
    if isinstance(row, dict) and isinstance(row.get("text"), str) and row["text"]:
        return
    if isinstance(row, dict) and "messages" in row:
        if _is_messages(row["messages"]) and any(m["role"] == "assistant" for m in row["messages"]):
            return
        raise UserError(f"{where}: messages must be a list of {{role, content}} messages with an assistant turn")
    if isinstance(row, dict) and "prompt" in row and "completion" in row:
        if all(_is_messages(row[key]) for key in ("prompt", "completion")):
            return
        raise UserError(f"{where}: prompt and completion must be non-empty lists of {{role, content}} messages")
    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
    raise UserError(f"{where}: expected {{prompt, completion}}, {{messages}} or {{text}}, got {keys}")


def _split_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    messages = row["messages"]
    return [
        {"prompt": messages[:index], "completion": [message]}
        for index, message in enumerate(messages)
        if message["role"] == "assistant" and index > 0
    ]


def _is_messages(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
    )


def load_rows(config: RunConfig, check_leaks: bool = True) -> Rows:
    """Training and validation rows of every data set in the run, leak-checked, the mix drawn at its weights.

    The main set's validation rows are the validation file, else a seeded validation_split, else none;
    a mixed-in set brings its own X.val.jsonl when it has one (training/train/mixing.py).
    `check_leaks=False` skips the leak check (a report on a finished run leaves out its own overlaps).
    """
    main = Source(config.train_file, 1.0, read_rows(config.train_file))
    if config.validation_file:
        main.validation = read_rows(config.validation_file, field="validation_file")
    elif config.validation_split:
        shuffled = random.Random(config.seed).sample(main.train, len(main.train))
        held_out = max(1, round(len(main.train) * config.validation_split))
        if held_out >= len(main.train):
            raise UserError(
                f"validation_split: {config.validation_split} leaves no training rows out of {len(main.train)}"
            )
        main.validation, main.train = shuffled[:held_out], shuffled[held_out:]
    sources = [main] + [_mixed_source(parse_entry(entry)) for entry in config.mix]
    validation = [(row, source.name) for source in sources for row in source.validation]
    training = [(row, source.name) for source in sources for row in source.train]
    report = find_leaks(training, validation) if check_leaks else LeakReport(checked=len(validation))
    kept_from = apply_policy(report, validation, config.leaks)
    kept = [row for row, _ in kept_from]
    drawn = interleave(sources, config.seed)
    train = [row for row, _ in drawn]
    if config.system_prompt:
        train, kept = _with_system(train, config.system_prompt), _with_system(kept, config.system_prompt)
    leaks = {**report.as_dict(), "policy": config.leaks, "dropped": len(validation) - len(kept)}
    return Rows(train, kept, describe(sources, drawn, leaks), [name for _, name in kept_from])


def _mixed_source(entry: MixEntry) -> Source:
    source = Source(entry.path, entry.weight, read_rows(entry.path, field=f"mix {Path(entry.path).name}"))
    held_out = validation_path(entry.path)
    if held_out.is_file() and held_out.stat().st_size:
        source.validation = read_rows(held_out, field=f"mix {held_out.name}")
    return source


def _with_system(rows: list[dict[str, Any]], system_prompt: str) -> list[dict[str, Any]]:
    # Only rows without one: the persona stage may already have written its own system message.
    out = []
    for row in rows:
        if "prompt" in row and row["prompt"][0]["role"] != "system":
            row = {**row, "prompt": [{"role": "system", "content": system_prompt}, *row["prompt"]]}
        out.append(row)
    return out


def causal_dataset(tokenizer: Any, rows: list[dict[str, Any]], config: RunConfig):
    """input_ids + completion_mask per row, cut at max_length; rows with nothing to learn are dropped.

    Tokenized here rather than by SFTTrainer because TRL refuses max_length with padding_free
    ("provide already truncated inputs"), and so the UI preview and the run agree.
    """
    from datasets import Dataset

    encoded = [tokenize_row(tokenizer, row, config.max_length) for row in rows]
    kept = [item for item in encoded if any(item["completion_mask"]) or not config.completion_only_loss]
    if rows and not kept:
        raise UserError(
            f"max_length: {config.max_length} leaves none of my replies inside any example; raise max_length "
            "or shorten the context (fewer context turns in the data step)"
        )
    dropped = len(encoded) - len(kept)
    return Dataset.from_list(kept), dropped


def seq2seq_dataset(tokenizer: Any, rows: list[dict[str, Any]], config: RunConfig, separator: str):
    """Encoder input = the prompt's messages joined with the persona's separator, target = my reply.

    The chat path builds its input with the same function (prompting.seq2seq_source) and cuts it the
    same way, at max_length from the left.
    """
    from datasets import Dataset

    sources, targets = [], []
    for row in rows:
        if "prompt" not in row:
            raise UserError(f"train_file: {config.model} is a seq2seq model and needs prompt/completion rows, not text")
        sources.append(seq2seq_source(row["prompt"], separator))
        targets.append(seq2seq_source(row["completion"], separator))
    # The end of a conversation is what the reply answers, so long inputs lose their oldest messages.
    tokenizer.truncation_side = "left"
    inputs = tokenizer(sources, truncation=True, max_length=config.max_length)
    tokenizer.truncation_side = "right"
    labels = tokenizer(text_target=targets, truncation=True, max_length=config.max_length)["input_ids"]
    return Dataset.from_dict({**inputs, "labels": labels}), 0


def update_steps(rows: int, config: RunConfig, world_size: int = 1) -> int:
    """Optimizer steps the Trainer will run (same arithmetic as transformers' Trainer)."""
    if config.max_steps:
        return config.max_steps
    batches = -(-rows // (config.batch_size * world_size))
    per_epoch = max(batches // config.grad_accumulation + int(batches % config.grad_accumulation > 0), 1)
    return max(1, math.ceil(config.epochs * per_epoch))
