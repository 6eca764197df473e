"""RunConfig's checks that span more than one field's bounds: a name that is a folder name, target
modules, mixed-in data sets, and settings that do not go together. Each problem is one message
naming the field, what it holds and what is allowed; RunConfig.validate joins them.

The per-field choices and bounds are checked from the fields' metadata (training/settings.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.settings import bound_problems, choice_problems
from training.train.mixing import mix_problems

if TYPE_CHECKING:
    from training.train.config import RunConfig

TARGET_MODULE_KEYWORDS = ("auto", "all-linear")


def value_problems(config: RunConfig) -> list[str]:
    c = config
    problems = choice_problems(c) + bound_problems(c)
    if not c.epochs > 0 and not c.max_steps:
        problems.append(f"epochs: {c.epochs!r}; expected a number > 0 (or set max_steps)")
    if not c.model.strip():
        problems.append("model: empty; give a Hub id like Qwen/Qwen2.5-0.5B-Instruct, a local folder or offline-tiny")
    problems += _target_module_problems(c.target_modules)
    problems += _name_problems(c.name)
    problems += mix_problems(c.mix)
    return problems


MAX_NAME_CHARS = 100  # a run name is a folder name: file systems refuse names past 255 bytes
_PLAIN_NAME = re.compile(r"[^\x00-\x1f\x7f/\\]+")  # no line breaks or other control characters, no slashes


def _name_problems(name: str) -> list[str]:
    if not name:
        return []
    shown = repr(name if len(name) <= 40 else name[:40] + "...")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > 2 * MAX_NAME_CHARS:
        return [f"name: {shown} is too long ({len(name)} characters); expected at most {MAX_NAME_CHARS}"]
    if not _PLAIN_NAME.fullmatch(name) or name.startswith(".") or name != name.strip():
        return [f"name: {shown}; expected a plain folder name: no '/', line breaks, leading '.' or outer spaces"]
    return []


def _target_module_problems(target: Any) -> list[str]:
    if isinstance(target, str) and target in TARGET_MODULE_KEYWORDS:
        return []
    if isinstance(target, list) and target and all(isinstance(item, str) and item for item in target):
        return []
    return [f"target_modules: {target!r}; expected auto, all-linear or a list of module names like [q_proj, v_proj]"]


def combination_problems(c: RunConfig) -> list[str]:
    problems = []
    if c.warmup_steps and c.warmup_ratio:
        problems.append("warmup_steps and warmup_ratio: both set; keep one (the other 0)")
    if c.early_stopping_patience and not c.has_validation:
        problems.append("early_stopping_patience: needs validation_file or validation_split to measure eval loss")
    if c.early_stopping_patience and c.save_steps % c.eval_steps:
        problems.append(
            f"save_steps: {c.save_steps} must be a multiple of eval_steps ({c.eval_steps}) with early stopping, "
            "so the best checkpoint exists"
        )
    if c.validation_file and c.validation_split:
        problems.append("validation_file and validation_split: both set; keep one")
    if c.packing and c.padding_free:
        problems.append("packing and padding_free: choose one (packing is already padding-free)")
    if c.method == "adalora" and c.packing:
        problems.append("packing: not supported with adalora, whose rank schedule needs the number of steps upfront")
    if c.method == "adalora" and c.adalora_target_r > c.adalora_init_r:
        problems.append(
            f"adalora_target_r: {c.adalora_target_r} is above adalora_init_r ({c.adalora_init_r}); "
            "AdaLoRA only prunes ranks"
        )
    if c.from_run and not c.is_preference:
        problems.append(f"from_run: only for methods dpo and kto, not {c.method}")
    if c.is_preference and c.mix:
        problems.append(f"mix: method {c.method} trains on one pairs file (train_file); leave mix empty")
    if (c.method == "full" or c.is_preference) and c.use_unsloth == "on":
        problems.append(f"use_unsloth: 'on' needs an adapter method (lora, rslora or qlora), not {c.method}")
    return problems


def absolute_entry(entry: str) -> str:
    """A mix entry's path resolved like train_file's, its weight kept as written."""
    path, _, weight = entry.rpartition("=") if "=" in entry else (entry, "", "")
    resolved = str(Path(path.strip()).expanduser().resolve()) if path.strip() else path
    return f"{resolved}={weight}" if weight else resolved


def parse_target_modules(text: str) -> str | list[str]:
    """'auto' / 'all-linear' stay keywords; 'q_proj, v_proj' becomes a list (CLI and UI text boxes)."""
    text = text.strip()
    if text in TARGET_MODULE_KEYWORDS:
        return text
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
