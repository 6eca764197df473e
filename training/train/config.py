"""RunConfig: every setting of one training run, as plain values that round-trip through YAML.

The run folder's config.yaml is the contract between whoever starts a run (UI, CLI, a script under
`accelerate launch`) and the training process, so the config validates itself and says, field by
field, what it expected. Defaults are the recommended persona setup (see presets.persona-small).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.errors import UserError
from training.templates import FALLBACK_TEMPLATES

METHODS = ("lora", "dora", "rslora", "adalora", "qlora", "full")
ADAPTER_METHODS = ("lora", "dora", "rslora", "adalora", "qlora")
SCHEDULERS = (
    "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial", "inverse_sqrt",
)  # fmt: skip
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "sgd")
DTYPES = ("auto", "fp32", "bf16", "fp16")
REPORT_TO = ("none", "tensorboard")
UNSLOTH_MODES = ("auto", "on", "off")
QUANTIZATION_BITS = (4, 8)
TARGET_MODULE_KEYWORDS = ("auto", "all-linear")
CHAT_TEMPLATES = tuple(FALLBACK_TEMPLATES)


@dataclass
class RunConfig:
    """One training run. Field comments are the help text the UI and the CLI show."""

    name: str = ""  # run folder name under runs/; empty = "<model>-<date>"
    preset: str = ""  # the preset this config started from, for display only
    model: str = "Qwen/Qwen2.5-0.5B-Instruct"  # Hub id, local folder, or offline-tiny
    method: str = "lora"  # lora | dora | rslora | adalora | qlora | full
    lora_r: int = 16  # adapter rank
    lora_alpha: int = 32  # adapter scale numerator (scale = alpha / r, or alpha / sqrt(r) for rslora)
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"  # auto (per architecture) | all-linear | [module names]
    quantization_bits: int = 4  # qlora only: load the frozen base in 4 or 8 bits
    adalora_init_r: int = 12  # adalora: rank every module starts with
    adalora_target_r: int = 8  # adalora: average rank left after pruning
    max_length: int = 512  # tokens per example; longer examples are cut at the end
    epochs: float = 3.0
    max_steps: int | None = None  # optimizer steps; set = ignore epochs
    batch_size: int = 4  # examples per device per forward pass
    grad_accumulation: int = 1  # forward passes per optimizer step
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # fraction of all steps; use this or warmup_steps
    weight_decay: float = 0.0
    optimizer: str = "adamw_torch"  # adamw_torch | adamw_8bit (CUDA + bitsandbytes) | sgd
    neftune_noise_alpha: float | None = None  # NEFTune embedding noise; 5 is the paper's usual value
    completion_only_loss: bool = True  # learn only "my" replies, not the other people's turns
    packing: bool = False  # concatenate short examples into max_length rows
    padding_free: bool = False  # one flat row per batch, no pad tokens (fastest with flash attention)
    activation_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    logging_steps: int = 5
    eval_steps: int = 50  # evaluate on the validation set every N steps
    save_steps: int = 50  # checkpoint every N steps (the last 2 are kept)
    early_stopping_patience: int | None = None  # stop after N evaluations without a better eval loss
    seed: int = 42
    dtype: str = "auto"  # auto = bf16/fp16 where the GPU supports it, fp32 on CPU
    train_file: str = ""  # JSONL from the persona stage
    validation_file: str = ""  # JSONL held out for eval loss; empty = none or validation_split
    validation_split: float = 0.0  # hold out this fraction of train_file when there is no validation_file
    output_dir: str = ""  # run folder; empty = <data dir>/runs/<name>
    system_prompt: str = ""  # added to rows that have no system message, and used when chatting
    chat_template: str = "chatml"  # fallback when the tokenizer has no chat template
    report_to: str = "none"  # none | tensorboard
    use_unsloth: str = "auto"  # auto = on CUDA when unsloth is installed | on | off

    # ---- YAML ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | os.PathLike, keep_retired: bool = False) -> Path:
        """Write config.yaml; `keep_retired` keeps the retired fields a file being replaced held, so
        an older run still says what it trained with."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        retired = retired_values(path) if keep_retired else {}
        extra = yaml.safe_dump(retired, sort_keys=False, allow_unicode=True) if retired else ""
        path.write_text(self.to_yaml() + extra, encoding="utf-8")
        return path

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> RunConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such config file") from None
        except yaml.YAMLError as error:
            raise UserError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from None
        return cls.from_dict(data or {}, where=path.name)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> RunConfig:
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a mapping of field: value, got {type(data).__name__}")
        current = {key: value for key, value in data.items() if key not in RETIRED_FIELDS}
        return cls(**_coerce_fields(current, where))

    def with_overrides(self, **flags: Any) -> RunConfig:
        """A copy with the given fields replaced; None means "not given" (CLI flags left out)."""
        given = {key: value for key, value in flags.items() if value is not None}
        return dataclasses.replace(self, **_coerce_fields(given, "override"))

    # ---- validation ----------------------------------------------------------------------------

    def validate(self, require_data: bool = True) -> RunConfig:
        """Raise UserError naming every bad field, what it holds and what is allowed; return self."""
        problems = _value_problems(self) + _combination_problems(self)
        if require_data and not self.train_file:
            problems.append("train_file: empty; choose the JSONL written by the data step")
        if problems:
            raise UserError("; ".join(problems))
        return self

    def with_absolute_paths(self) -> RunConfig:
        """Files resolved against the current folder: a run's process may start somewhere else."""
        absolute = {
            name: str(Path(value).expanduser().resolve())
            for name in ("train_file", "validation_file", "output_dir", "model")
            if (value := getattr(self, name)) and (name != "model" or Path(value).expanduser().exists())
        }
        return dataclasses.replace(self, **absolute)

    @property
    def uses_adapter(self) -> bool:
        return self.method in ADAPTER_METHODS

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_file) or self.validation_split > 0


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))
# Fields older config.yaml files still hold: read without complaint, never written again. The
# separator is the data set's now (its persona manifest); train/run_record.py reads an old run's
# value only when the run has no manifest.
RETIRED_FIELDS = ("separator",)


def retired_values(path: str | os.PathLike) -> dict[str, Any]:
    """The retired fields an older config.yaml still holds, as written; {} for none or no file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return {key: data[key] for key in RETIRED_FIELDS if key in data} if isinstance(data, dict) else {}


def _choice(name: str, value: Any, allowed: tuple) -> list[str]:
    if value in allowed:
        return []
    return [f"{name}: {value!r} is not one of {', '.join(map(str, allowed))}"]


def _at_least(name: str, value: Any, low: float, what: str = "a number") -> list[str]:
    return [] if value is None or value >= low else [f"{name}: {value!r}; expected {what} >= {low:g}"]


def _value_problems(config: RunConfig) -> list[str]:
    c = config
    problems = []
    for name, allowed in (
        ("method", METHODS), ("scheduler", SCHEDULERS), ("optimizer", OPTIMIZERS), ("dtype", DTYPES),
        ("report_to", REPORT_TO), ("use_unsloth", UNSLOTH_MODES), ("quantization_bits", QUANTIZATION_BITS),
        ("chat_template", CHAT_TEMPLATES),
    ):  # fmt: skip
        problems += _choice(name, getattr(c, name), allowed)
    for name in ("lora_r", "lora_alpha", "adalora_init_r", "adalora_target_r", "batch_size", "grad_accumulation",
                 "max_length", "logging_steps", "eval_steps", "save_steps", "max_steps", "early_stopping_patience"):
        problems += _at_least(name, getattr(c, name), 1, "a whole number")
    problems += _at_least("warmup_steps", c.warmup_steps, 0, "a whole number")
    problems += _at_least("weight_decay", c.weight_decay, 0)
    problems += _at_least("neftune_noise_alpha", c.neftune_noise_alpha, 0)
    if not 0 <= c.lora_dropout < 1:
        problems.append(f"lora_dropout: {c.lora_dropout!r}; expected a fraction in [0, 1)")
    for name in ("warmup_ratio", "validation_split"):
        if not 0 <= getattr(c, name) < 1:
            problems.append(f"{name}: {getattr(c, name)!r}; expected a fraction in [0, 1)")
    if not (math.isfinite(c.learning_rate) and 0 < c.learning_rate < 1):
        problems.append(f"learning_rate: {c.learning_rate!r}; expected a small positive number like 2e-4")
    if not c.epochs > 0 and c.max_steps is None:
        problems.append(f"epochs: {c.epochs!r}; expected a number > 0 (or set max_steps)")
    if not c.model.strip():
        problems.append("model: empty; give a Hub id like Qwen/Qwen2.5-0.5B-Instruct, a local folder or offline-tiny")
    problems += _target_module_problems(c.target_modules)
    problems += _name_problems(c.name)
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


def _combination_problems(c: RunConfig) -> list[str]:
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
    if c.method == "full" and c.use_unsloth == "on":
        problems.append("use_unsloth: 'on' needs an adapter method (lora, rslora or qlora), not full")
    return problems


# ---- coercion ------------------------------------------------------------------------------------
# Hand-written because YAML 1.1 reads "2e-4" as a string and UI fields arrive as strings; a schema
# library (pydantic) would be a new dependency for ~40 lines.

_HINTS = typing.get_type_hints(RunConfig)


def _coerce_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = [key for key in data if key not in FIELD_NAMES]
    if unknown:
        key = unknown[0]
        guess = difflib.get_close_matches(str(key), FIELD_NAMES, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f"; known fields: {', '.join(FIELD_NAMES)}"
        raise UserError(f"{where}: unknown field {key!r}{hint}")
    return {key: _coerce(key, value, _HINTS[key], where) for key, value in data.items()}


def _coerce(name: str, value: Any, hint: Any, where: str) -> Any:
    if name == "target_modules" and isinstance(value, str):
        return parse_target_modules(value)
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if type(None) in options:
            return None
    for option in options:
        converted = _convert(value, option)
        if converted is not _FAILED:
            return converted
    expected = " or ".join(_TYPE_WORDS.get(option, str(option)) for option in options)
    raise UserError(f"{where}: {name}: {value!r} is not {expected}")


_FAILED = object()
_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true/false", str: "text",
               list[str]: "a list of names", type(None): "empty"}  # fmt: skip


def _convert(value: Any, option: Any) -> Any:
    if option is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        return _FAILED
    if option is int:
        try:
            number = float(value) if not isinstance(value, bool) else _FAILED
        except (TypeError, ValueError):
            return _FAILED
        return int(number) if number is not _FAILED and math.isfinite(number) and number == int(number) else _FAILED
    if option is float:
        try:
            return float(value) if not isinstance(value, bool) else _FAILED
        except (TypeError, ValueError):
            return _FAILED
    if option is str:
        return value if isinstance(value, str) else _FAILED
    if option == list[str]:
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value]
        return _FAILED
    return _FAILED if value is None else value


def parse_target_modules(text: str) -> str | list[str]:
    """'auto' / 'all-linear' stay keywords; 'q_proj, v_proj' becomes a list (CLI and UI text boxes)."""
    text = text.strip()
    if text in TARGET_MODULE_KEYWORDS:
        return text
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
