"""What a run will cost before it starts: parameters, peak memory, time and money.

The memory model (architecture, parameter counts, memory by part) is footprint.py's; here are the
devices (this machine, Hugging Face Spaces' GPUs), the FLOPs and time, the price, and the estimate
for a config's real data (its examples' count and token lengths, a mix of data sets included).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import psutil
import torch

from training.errors import UserError
from training.models import load_pretrained, resolve
from training.train.config import RunConfig
from training.train.footprint import (
    GB,
    _parameters_and_dropout_inputs,
    architecture,
    memory_breakdown,
)


@dataclass(frozen=True)
class Device:
    name: str
    memory_gb: float
    tflops: float  # dense bf16/fp16 tensor throughput (fp32 for CPUs), the datasheet figure
    dollars_per_hour: float


# Hugging Face Spaces hardware (huggingface.co/docs/hub/spaces-gpus, list prices; check before
# you rely on them). TFLOPs are NVIDIA's dense datasheet numbers.
SPACE_DEVICES = [
    Device("CPU basic (free Space, 2 vCPU)", 16, 0.1, 0.0),
    Device("Nvidia T4 small", 16, 65, 0.40),
    Device("Nvidia T4 medium", 16, 65, 0.60),
    Device("Nvidia L4", 24, 121, 0.80),
    Device("Nvidia A10G small", 24, 70, 1.00),
    Device("Nvidia A10G large", 24, 70, 1.50),
    Device("Nvidia L40S", 48, 362, 1.80),
    Device("Nvidia A100 large", 80, 312, 4.00),
    Device("Nvidia H100", 80, 989, 10.00),
]
GPU_EFFICIENCY = 0.35  # share of datasheet FLOPs small-batch LoRA training reaches in practice
CPU_EFFICIENCY = 0.25  # of the matmul throughput measured on this machine


@dataclass
class Estimate:
    total_params: int
    trainable_params: int
    memory_gb: dict[str, float]  # weights, gradients, optimizer, activations, logits, runtime
    peak_gb: float
    device: str
    device_memory_gb: float
    fits: bool
    tokens_per_step: int
    total_steps: int
    hours: float
    dollars: float
    notes: list[str] = field(default_factory=list)
    backend: str = "transformers+peft"  # or "unsloth": what the memory model assumed trains it

    def to_dict(self) -> dict:
        return asdict(self)


def training_flops(config: RunConfig, total: int, trainable: int, tokens: int) -> float:
    """FLOPs for one optimizer step: 6·N per token for full training, 4·N for adapters
    (no weight gradients for the frozen base), plus one more forward with checkpointing."""
    per_token = (6 if not config.uses_adapter else 4) * total
    if config.activation_checkpointing:
        per_token += 2 * total
    if config.is_preference:  # the frozen reference's forward pass over the same sequences
        per_token += 2 * total
    return per_token * tokens * config.grad_accumulation


@lru_cache(maxsize=1)
def measured_cpu_tflops() -> float:
    """This machine's fp32 matmul throughput, measured in about a tenth of a second."""
    size = 512
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < 0.1:
        torch.mm(a, b)
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e12


def local_device() -> Device:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        match = next((d for d in SPACE_DEVICES if d.name.split()[1] in props.name), None)
        return Device(props.name, props.total_memory / GB, match.tflops if match else 100.0, 0.0)
    available = psutil.virtual_memory().total / GB
    return Device(f"this machine's CPU ({psutil.cpu_count()} cores)", available, measured_cpu_tflops(), 0.0)


def estimate(
    config: RunConfig,
    examples: int = 1000,
    tokens_per_example: float | None = None,
    longest_example: int | None = None,
    device: Device | None = None,
    dollars_per_hour: float | None = None,
    backend: str | None = None,
) -> Estimate:
    """`tokens_per_example` (mean) sets the time and `longest_example` the memory peak (batches
    are padded to their longest row); unknown, every example counts as max_length tokens.
    `backend` ("unsloth" or "transformers+peft"): default, what would train it here."""
    from training.train.dataset import update_steps

    arch = architecture(config.model)
    total, trainable, dropout_inputs = _parameters_and_dropout_inputs(config, arch)
    device = device or local_device()
    cuda = not device.name.startswith(("CPU", "this machine"))
    length = config.max_length if tokens_per_example is None else min(tokens_per_example, config.max_length)
    longest = config.max_length if longest_example is None else min(longest_example, config.max_length)
    # A preference row trains two sequences: chosen and rejected (DPO), completion and KL completion (KTO).
    sequences = 2 if config.is_preference else 1
    batch_tokens = int(config.batch_size * sequences * _peak_row_tokens(config, length, longest))
    backend = backend or expected_backend(config, arch, cuda)
    memory = memory_breakdown(config, arch, total, trainable, cuda, batch_tokens, dropout_inputs, backend)
    peak = sum(memory.values())
    steps = update_steps(examples, config)
    step_tokens = int(config.batch_size * config.grad_accumulation * length)
    efficiency = GPU_EFFICIENCY if cuda else CPU_EFFICIENCY
    step_flops = training_flops(config, total, trainable, int(config.batch_size * sequences * length))
    seconds = steps * step_flops / (device.tflops * 1e12 * efficiency)
    rate = device.dollars_per_hour if dollars_per_hour is None else dollars_per_hour
    notes = []
    if config.method == "qlora" and not cuda:
        notes.append("QLoRA needs a CUDA GPU with bitsandbytes; on CPU choose LoRA.")
    if config.is_preference:
        notes.append(
            f"{config.method}: each row trains two sequences and the frozen reference (the starting run's "
            "adapter) reads both: about 1.5x the compute of SFT on the same tokens."
        )
    if peak > device.memory_gb:
        notes.append("Does not fit: try QLoRA, a smaller batch, a shorter max length, or activation checkpointing.")
    return Estimate(
        total_params=total,
        trainable_params=trainable,
        memory_gb=memory,
        peak_gb=peak,
        device=device.name,
        device_memory_gb=round(device.memory_gb, 1),
        fits=peak <= device.memory_gb,
        tokens_per_step=step_tokens,
        total_steps=steps,
        hours=seconds / 3600,
        dollars=seconds / 3600 * rate,
        notes=notes,
        backend=backend,
    )


def expected_backend(config: RunConfig, arch, cuda: bool) -> str:
    """What would train this run here: Unsloth on CUDA when the run qualifies and Unsloth is installed."""
    from training.train.methods import Hardware, unsloth_unused_reason

    seq2seq = bool(getattr(arch, "is_encoder_decoder", False))
    if unsloth_unused_reason(config, Hardware(cuda=cuda, bf16=cuda), seq2seq) is None and importlib.util.find_spec(
        "unsloth"
    ):
        return "unsloth"
    return "transformers+peft"


def _peak_row_tokens(config: RunConfig, mean: float, longest: int) -> float:
    """Tokens per row in the batch that sets the memory peak."""
    if config.packing:  # packed rows are filled up to max_length
        return config.max_length
    if config.padding_free:
        # Rows keep their own lengths: the largest batch lies between batch x mean and batch x longest
        # (measured: 8 x 116 mean, 8 x 217 longest on the sample; the midpoint fit its peak RSS).
        return (mean + longest) / 2
    return longest  # padded to the longest row of the batch that holds it


def format_estimate(result: Estimate) -> str:
    """A short markdown report for the UI and the CLI."""
    m = result.memory_gb
    share = result.trainable_params / max(result.total_params, 1)
    fits = "fits" if result.fits else "does NOT fit"
    lines = [
        f"**{result.trainable_params:,} trainable** of {result.total_params:,} parameters ({share:.2%})",
        f"**Peak memory ≈ {result.peak_gb:.2f} GB**, {fits} in {result.device_memory_gb:.0f} GB ({result.device}): "
        f"weights {m['weights']:.2f}, gradients {m['gradients']:.2f}, optimizer {m['optimizer']:.2f}, "
        f"activations {m['activations']:.2f}, logits {m['logits']:.2f}, runtime {m['runtime']:.2f} GB"
        + (" (training with Unsloth)" if result.backend == "unsloth" else ""),
        f"**{result.total_steps:,} steps ≈ {_duration(result.hours)}**"
        + (f", about ${result.dollars:,.2f}" if result.dollars else "")
        + " (a FLOPs estimate; the live ETA uses measured speed once training runs)",
    ]
    return "\n\n".join(lines + [f"⚠️ {note}" for note in result.notes])


def _duration(hours: float) -> str:
    if hours < 1 / 60:
        return f"{max(hours * 3600, 1):.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h"


def estimate_for_data(
    config: RunConfig, device: Device | None = None, dollars_per_hour: float | None = None, backend: str | None = None
) -> Estimate:
    """Estimate with the real examples of config.train_file (count and token lengths) when it exists."""
    config = _starting_shape(config)
    if not (config.train_file and Path(config.train_file).exists()):
        return estimate(config, device=device, dollars_per_hour=dollars_per_hour, backend=backend)
    from training.templates import ensure_chat_template, length_stats
    from training.train.dataset import read_rows

    rows = _preference_sequences(config) if config.is_preference else read_rows(config.train_file)
    examples, sample = len(rows), rows[:2000]
    if config.mix and not config.is_preference:
        examples, sample = _mixed_epoch(config, rows)
    tokenizer = _local_tokenizer(config.model)
    if tokenizer is None:  # not on this machine yet: count the examples, assume max_length tokens
        return estimate(config, examples=examples, device=device, dollars_per_hour=dollars_per_hour, backend=backend)
    ensure_chat_template(tokenizer, config.chat_template)
    stats = length_stats(tokenizer, sample, config.max_length)
    return estimate(
        config,
        examples=examples,
        tokens_per_example=stats["mean"],
        longest_example=stats["max"],
        device=device,
        dollars_per_hour=dollars_per_hour,
        backend=backend,
    )


def _mixed_epoch(config: RunConfig, rows: list[dict]) -> tuple[int, list[dict]]:
    """(rows one epoch of the mix draws, rows to measure lengths on: up to 2,000 of each set)."""
    from training.train.dataset import read_rows
    from training.train.mixing import epoch_draws, parse_entry

    entries = [parse_entry(entry) for entry in config.mix]
    mixed = [read_rows(entry.path, field=f"mix {Path(entry.path).name}") for entry in entries]
    sizes, weights = [len(rows), *map(len, mixed)], [1.0, *(entry.weight for entry in entries)]
    return round(epoch_draws(sizes, weights)), [row for part in (rows, *mixed) for row in part[:2000]]


def _starting_shape(config: RunConfig) -> RunConfig:
    """A preference round's model and adapter are its starting run's (train/preference.py)."""
    if not (config.is_preference and config.from_run and (Path(config.from_run) / "config.yaml").is_file()):
        return config
    start = RunConfig.from_yaml(Path(config.from_run) / "config.yaml")
    shape = ("model", "chat_template", "lora_r", "lora_alpha", "lora_dropout", "target_modules")
    return dataclasses.replace(config, **{name: getattr(start, name) for name in shape})


def _preference_sequences(config: RunConfig) -> list[dict]:
    """Each preference row as the prompt/completion row it trains, for the token counts."""
    from training.train.preference import read_preference_rows

    rows = read_preference_rows(config.train_file, config.method)
    side = "chosen" if config.method == "dpo" else "completion"  # a rejected reply is about as long
    return [{"prompt": row["prompt"], "completion": row[side]} for row in rows]


def _local_tokenizer(model: str):
    """The model's tokenizer if it is already on this machine (a folder or the Hub cache), else None.

    An estimate must never wait on a download: offline, huggingface_hub retries for about a minute.
    """
    from transformers import AutoTokenizer

    try:  # its own copy: the fallback template set below must not leak into other users' tokenizer
        return load_pretrained(AutoTokenizer.from_pretrained, resolve(model, fetch=False), model, local_files_only=True)
    except UserError:
        return None


def device_by_name(name: str) -> Device:
    for device in SPACE_DEVICES:
        if device.name == name:
            return device
    raise UserError(f"device: unknown {name!r}; choose one of {', '.join(d.name for d in SPACE_DEVICES)}")
