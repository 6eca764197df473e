"""RunConfig: every setting of one training run, as plain values that round-trip through YAML.

The run folder's config.yaml is the contract between whoever starts a run (UI, CLI, a script under
`accelerate launch`) and the training process, so the config validates itself and says, field by
field, what it expected. Defaults are the recommended persona setup (see presets.persona-small).
Each field's label, help, choices and bounds live in its metadata (training/settings.py): the CLI's
`train` flags, the Train tab's widgets and README's table are built from it, and `validate` checks
choices and bounds from it, so a new setting is a field here plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.errors import UserError
from training.settings import FRACTION, WHOLE, ZERO_IS_OFF, coerce_fields, setting
from training.templates import FALLBACK_TEMPLATES
from training.train.config_checks import absolute_entry, combination_problems, parse_target_modules, value_problems

METHODS = ("lora", "dora", "rslora", "adalora", "qlora", "full", "dpo", "kto")
ADAPTER_METHODS = ("lora", "dora", "rslora", "adalora", "qlora")
# A preference round goes on training a finished run's adapter on preference pairs (train/preference.py).
PREFERENCE_METHODS = ("dpo", "kto")
SCHEDULERS = (
    "linear",
    "cosine",
    "constant",
    "constant_with_warmup",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
)
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "sgd")
DTYPES = ("auto", "fp32", "bf16", "fp16")
REPORT_TO = ("none", "tensorboard")
UNSLOTH_MODES = ("auto", "on", "off")
LEAK_POLICIES = ("refuse", "drop")
QUANTIZATION_BITS = (4, 8)
CHAT_TEMPLATES = tuple(FALLBACK_TEMPLATES)


@dataclass
class RunConfig:
    """One training run. Each field's metadata (label, help, choices, bounds) is what the UI, the CLI
    and the README show for it (training/settings.py); 0 switches off the settings whose help says so."""

    name: str = setting("", label="Run name (optional)", help="run folder name under runs/; empty = <model>-<date>")
    preset: str = setting(
        "", label="Recipe", help="the recipe (preset) these settings started from; config.yaml keeps it for display"
    )
    model: str = setting(
        "Qwen/Qwen2.5-0.5B-Instruct",
        label="Model: Hub id, local folder, or offline-tiny",
        help="Hub id, local folder (a full fine-tune's final/), offline-small or offline-tiny",
    )
    method: str = setting(
        "lora",
        label="Method",
        choices=METHODS,
        help="lora, dora, rslora, adalora, qlora (4/8-bit base, CUDA), full fine-tuning, or a "
        "preference round on a finished run: dpo (pairs) or kto (thumbs up/down)",
    )
    from_run: str = setting(
        "",
        label="Start from run (dpo/kto)",
        help="dpo/kto: the finished LoRA run whose adapter the preference round trains further; "
        "the reference model is that run, frozen",
    )
    beta: float = setting(
        0.1,
        label="Preference beta (dpo/kto)",
        above=0,
        help="dpo/kto: how far from the starting run the round may move; lower = further (0.1 usual)",
    )
    rpo_alpha: float = setting(
        0.0,
        label="RPO alpha (dpo)",
        **ZERO_IS_OFF,
        help="dpo: weight of the chosen reply's own loss (NLL per token) added to the DPO loss (RPO), which keeps "
        "the round writing like the chosen replies instead of only away from the rejected ones; 0 = plain DPO",
    )
    lora_r: int = setting(16, label="LoRA rank r", help="adapter rank", **WHOLE)
    lora_alpha: int = setting(
        32,
        label="LoRA alpha",
        help="adapter scale numerator (scale = alpha / r, or alpha / sqrt(r) for rslora)",
        **WHOLE,
    )
    lora_dropout: float = setting(0.05, label="LoRA dropout", help="dropout on the adapter's input", **FRACTION)
    target_modules: str | list[str] = setting(
        "all-linear",
        label="Target modules (auto, all-linear, or names)",
        help="auto (per architecture), all-linear, or module names like q_proj, v_proj",
        parse=lambda text, name: parse_target_modules(text),
    )
    quantization_bits: int = setting(
        4, label="QLoRA bits", choices=QUANTIZATION_BITS, help="qlora only: load the frozen base in 4 or 8 bits"
    )
    adalora_init_r: int = setting(
        12, label="AdaLoRA initial rank", help="adalora: rank every module starts with", **WHOLE
    )
    adalora_target_r: int = setting(
        8, label="AdaLoRA target rank", help="adalora: average rank left after pruning", **WHOLE
    )
    max_length: int = setting(
        512, label="Max length (tokens)", help="tokens per example; longer examples are cut at the end", **WHOLE
    )
    epochs: float = setting(3.0, label="Epochs", help="passes over the training data (ignored when max_steps is set)")
    max_steps: int = setting(
        0, label="Max steps (0 = by epochs)", help="optimizer steps; 0 = train by epochs", **ZERO_IS_OFF
    )
    batch_size: int = setting(4, label="Batch size", help="examples per device per forward pass", **WHOLE)
    grad_accumulation: int = setting(
        1, label="Gradient accumulation", help="forward passes per optimizer step", **WHOLE
    )
    learning_rate: float = setting(
        2e-4,
        label="Learning rate",
        help="peak learning rate",
        above=0,
        below=1,
        expected="a small positive number like 2e-4",
    )
    scheduler: str = setting("cosine", label="LR schedule", choices=SCHEDULERS, help="how the learning rate moves")
    warmup_steps: int = setting(
        0, label="Warmup steps", help="steps of rising learning rate; use this or warmup_ratio", **ZERO_IS_OFF
    )
    warmup_ratio: float = setting(
        0.0, label="Warmup ratio", help="warmup as a fraction of all steps", **FRACTION, off=0
    )
    weight_decay: float = setting(0.0, label="Weight decay", help="AdamW weight decay", min=0)
    optimizer: str = setting(
        "adamw_torch",
        label="Optimizer",
        choices=OPTIMIZERS,
        help="adamw_torch, adamw_8bit (CUDA + bitsandbytes) or sgd",
    )
    neftune_noise_alpha: float = setting(
        0.0,
        label="NEFTune alpha (0 = off)",
        **ZERO_IS_OFF,
        help="NEFTune embedding noise; 5 is the paper's usual value; 0 = off",
    )
    completion_only_loss: bool = setting(
        True, label="Learn only my replies", help='loss only on "my" replies, not on the other people\'s turns'
    )
    packing: bool = setting(False, label="Packing", help="concatenate short examples into max_length rows")
    padding_free: bool = setting(
        False, label="Padding-free batches", help="one flat row per batch, no pad tokens (fastest with flash attention)"
    )
    activation_checkpointing: bool = setting(
        False, label="Activation checkpointing", help="recompute activations: less memory, ~30% slower"
    )
    logging_steps: int = setting(5, label="Log every (steps)", help="write a metrics line every N steps", **WHOLE)
    eval_steps: int = setting(
        50, label="Evaluate every (steps)", help="eval loss on the validation set every N steps", **WHOLE
    )
    save_steps: int = setting(50, label="Checkpoint every (steps)", help="save a checkpoint every N steps", **WHOLE)
    save_total_limit: int = setting(
        2,
        label="Checkpoints kept",
        min=0,
        help="newest checkpoints kept on disk, as seed 004 kept 2; 0 = keep every one",
    )
    early_stopping_patience: int = setting(
        0,
        label="Early-stopping patience (0 = off)",
        **ZERO_IS_OFF,
        help="stop after N evaluations without a better eval loss; 0 = off",
    )
    seed: int = setting(42, label="Seed", help="random seed for initialisation and data order")
    dtype: str = setting(
        "auto", label="Precision", choices=DTYPES, help="auto = bf16/fp16 where the GPU supports it, fp32 on CPU"
    )
    train_file: str = setting(
        "",
        label="Training data (from the Data tab)",
        help="JSONL from the data step (dpo/kto: the pairs file of `python -m training pairs`)",
        flags=("--data",),
    )
    validation_file: str = setting(
        "",
        label="Validation data",
        help="JSONL held out for eval loss; empty = none or validation_split",
        flags=("--validation",),
    )
    validation_split: float = setting(
        0.0,
        label="Validation split",
        help="hold out this fraction of train_file when there is no validation_file",
        **FRACTION,
    )
    mix: list[str] = setting(
        label="Mixed-in data sets (PATH=WEIGHT)",
        factory=list,
        metavar="PATH=WEIGHT",
        help="more JSONL data sets drawn alongside train_file (weight 1): knowledge.jsonl=0.5 "
        "draws it half as often; each one's X.val.jsonl joins the validation rows",
    )
    leaks: str = setting(
        "refuse",
        label="Validation rows found in training",
        choices=LEAK_POLICIES,
        help="the leak check before every run: refuse to start, or drop the leaked validation rows",
    )
    output_dir: str = setting(
        "", label="Run folder", help="run folder; empty = <data dir>/runs/<name>", flags=("--output",)
    )
    system_prompt: str = setting(
        "",
        label="System prompt for rows without one",
        help="added to rows that have no system message, and used when chatting",
    )
    chat_template: str = setting(
        "chatml",
        label="Template if the model has none",
        choices=CHAT_TEMPLATES,
        help="the chat template used when the tokenizer has none",
    )
    report_to: str = setting("none", label="Tracker", choices=REPORT_TO, help="experiment tracker: none or tensorboard")
    use_unsloth: str = setting(
        "auto",
        label="Unsloth (GPU only)",
        choices=UNSLOTH_MODES,
        help="auto = on CUDA when unsloth is installed; on = required; off = never",
    )

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
        return cls(**coerce_fields(cls, current, where))

    def with_overrides(self, **flags: Any) -> RunConfig:
        """A copy with the given fields replaced; None means "not given" (CLI flags left out)."""
        given = {key: value for key, value in flags.items() if value is not None}
        return dataclasses.replace(self, **coerce_fields(RunConfig, given, "override"))

    # ---- validation ----------------------------------------------------------------------------

    def validate(self, require_data: bool = True) -> RunConfig:
        """Raise UserError naming every bad field, what it holds and what is allowed; return self."""
        problems = value_problems(self) + combination_problems(self)
        if require_data and not self.train_file:
            problems.append("train_file: empty; choose the JSONL written by the data step")
        if require_data and self.is_preference and not self.from_run:
            problems.append(
                f"from_run: empty; method {self.method} trains a finished run's adapter further: name that run"
            )
        if problems:
            raise UserError("; ".join(problems))
        return self

    def with_absolute_paths(self) -> RunConfig:
        """Files resolved against the current folder: a run's process may start somewhere else."""
        absolute = {
            name: str(Path(value).expanduser().resolve())
            for name in ("train_file", "validation_file", "output_dir", "model", "from_run")
            if (value := getattr(self, name))
            and (name not in ("model", "from_run") or Path(value).expanduser().exists())
        }
        absolute["mix"] = [absolute_entry(entry) for entry in self.mix]
        return dataclasses.replace(self, **absolute)

    @property
    def uses_adapter(self) -> bool:
        return self.method in ADAPTER_METHODS or self.is_preference

    @property
    def is_preference(self) -> bool:
        return self.method in PREFERENCE_METHODS

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_file) or self.validation_split > 0


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
