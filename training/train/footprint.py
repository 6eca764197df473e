"""What a model and a training run hold in memory: the model's architecture (from its folder, the
Hub, or architectures.yaml, the presets' configs, so it works offline), exact parameter counts, and
the peak memory by part (weights, gradients, optimizer, activations, loss, runtime). estimate.py
turns this into the estimate shown before a run, with time and money.

Memory follows seed 001's arithmetic: weights by dtype, optimizer states (AdamW 8 bytes per
trainable parameter, 8-bit Adam 2), gradients, plus the forward activations kept for the backward
pass (per token: the layer inputs and projections of each layer, Korthikanti et al. without the
attention-score term that SDPA/flash attention never stores) and the loss: the fp32 logits on CPU,
TRL's tiled LM head on CUDA. The GPU terms are checked against a real GPU by bench/gpu_check.py.
Parameter counts are exact: the model and its adapter are built on PyTorch's "meta" device, which
allocates nothing, so a 7B estimate takes a second and no download of weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import yaml

from training.models import load_pretrained, resolve
from training.train.config import RunConfig

GB = 1024**3

# The preset models' architectures (from their config.json), so the estimate works offline.
KNOWN_ARCHITECTURES: dict[str, dict] = yaml.safe_load(
    Path(__file__).with_name("architectures.yaml").read_text(encoding="utf-8")
)


# CUDA context, cuBLAS workspaces, loaded kernels and the caching allocator's slack: what NVML saw
# beyond torch's own peak was 0.85-1.90 GB (median 1.1) over the eight rows of the H200 GPU check
# (docs/benchmarks.md, "GPU check").
GPU_RUNTIME_GB = 1.1
# Unsloth's fused kernels (RMSNorm, RoPE, SwiGLU, LoRA MLP) save fewer tensors per layer: its LoRA
# runs' torch peak held 0.56x (SmolLM2-135M) and 0.61x (a 0.78B Llama) of peft's activations, same data.
UNSLOTH_ACTIVATION_SHARE = 0.58
# Measured with bench/bench_estimate.py (peak RSS of `python -m training train`, 2-core CPU, torch 2.13):
# a process that has only imported the training stack peaks at 0.48 GB; 0.5 GB fits tiny-model runs.
CPU_RUNTIME_GB = 0.5  # the training process before the model: Python, torch, transformers, TRL, datasets
# glibc's malloc keeps freed activation memory mapped: with a fixed MALLOC_MMAP_THRESHOLD_ peak RSS
# fell by 0.35-1.45 GB on a 25M Llama (2.3-6.5 layers' worth of activations). About three layers'
# worth fits all six measured configs within 20%.
CPU_RETAINED_LAYERS = 3


def architecture(model: str):
    """The model's transformers config: from its folder, the Hub, or the offline table above."""
    from transformers import CONFIG_MAPPING, AutoConfig

    if model in KNOWN_ARCHITECTURES:
        known = dict(KNOWN_ARCHITECTURES[model])
        return CONFIG_MAPPING[known.pop("model_type")](**known)
    return load_pretrained(AutoConfig.from_pretrained, resolve(model), model)


def count_parameters(config: RunConfig, arch) -> tuple[int, int]:
    """(total, trainable) for this model and method, exactly, allocating nothing."""
    total, trainable, _ = _parameters_and_dropout_inputs(config, arch)
    return total, trainable


def _parameters_and_dropout_inputs(config: RunConfig, arch) -> tuple[int, int, int]:
    """(total, trainable, dropout inputs): the last is the summed input width of every adapted
    module, whose dropped-out copy LoRA dropout keeps for the backward pass (0 without dropout)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    seq2seq = bool(getattr(arch, "is_encoder_decoder", False))
    with torch.device("meta"):
        model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_config(arch)
    if not config.uses_adapter:
        total = sum(p.numel() for p in model.parameters())
        return total, total, 0
    from peft import get_peft_model
    from peft.tuners.lora import LoraLayer

    from training.train.methods import adapter_config

    peft_model = get_peft_model(model, adapter_config(config, arch.model_type, seq2seq, total_steps=100))
    trainable, total = peft_model.get_nb_trainable_parameters()
    if config.method == "adalora":  # pruning leaves target_r of init_r on average
        trainable = int(trainable * config.adalora_target_r / max(config.adalora_init_r, 1))
    dropped = sum(m.in_features for m in peft_model.modules() if isinstance(m, LoraLayer)) if config.lora_dropout else 0
    return total, trainable, dropped


def dims(arch) -> tuple[int, int, int, int, int]:
    """hidden, layers, mlp width, key/value width, vocab, whatever the config calls them."""
    hidden = getattr(arch, "hidden_size", None) or getattr(arch, "d_model", None) or arch.n_embd
    layers = (
        getattr(arch, "num_hidden_layers", None)
        or getattr(arch, "n_layer", None)
        or arch.encoder_layers + arch.decoder_layers
    )
    mlp = (
        getattr(arch, "intermediate_size", None)
        or getattr(arch, "decoder_ffn_dim", None)
        or getattr(arch, "n_inner", None)
        or 4 * hidden
    )
    kv = (getattr(arch, "num_key_value_heads", None) or _heads(arch)) * (hidden // _heads(arch))
    return hidden, layers, mlp, kv, arch.vocab_size


def _heads(arch) -> int:
    return getattr(arch, "num_attention_heads", None) or getattr(arch, "n_head", None) or arch.decoder_attention_heads


def memory_breakdown(
    config: RunConfig,
    arch,
    total: int,
    trainable: int,
    cuda: bool,
    tokens: int,
    dropout_inputs: int = 0,
    backend: str = "transformers+peft",
) -> dict[str, float]:
    compute = _compute_bytes(config, cuda)
    hidden, layers, _, _, vocab = dims(arch)
    frozen = total - trainable if config.uses_adapter else 0
    if config.method == "qlora":
        embedding = vocab * hidden * (1 if getattr(arch, "tie_word_embeddings", False) else 2)
        quantized = max(frozen - embedding, 0)
        per_weight = 0.53 if config.quantization_bits == 4 else 1.03  # nf4 + double-quantised scales
        # peft's prepare_model_for_kbit_training casts every weight it did not quantize (embeddings,
        # head, norms) to fp32; Unsloth keeps them in the compute dtype.
        unquantized = compute if backend == "unsloth" else 4
        weights = quantized * per_weight + (frozen - quantized) * unquantized
    else:
        weights = frozen * compute
    master = 4 if config.uses_adapter else compute  # peft keeps adapters in fp32
    weights += trainable * master
    optimizer = {"adamw_torch": 2 * master, "adamw_8bit": 2, "sgd": 0}[config.optimizer] * trainable
    activations = tokens * _activation_bytes_per_token(config, arch, compute, dropout_inputs, backend)
    if not cuda:
        unchecked = dataclasses.replace(config, activation_checkpointing=False)
        one_layer = tokens * _activation_bytes_per_token(unchecked, arch, compute, dropout_inputs) / layers
        activations += CPU_RETAINED_LAYERS * one_layer
        if config.padding_free or config.packing:
            activations += _flattened_attention_bytes(arch, tokens)
    return {
        "weights": weights / GB,
        "gradients": trainable * master / GB,
        "optimizer": optimizer / GB,
        "activations": activations / GB,
        "logits": _loss_bytes(config, arch, tokens, compute, cuda) / GB,
        "runtime": GPU_RUNTIME_GB if cuda else CPU_RUNTIME_GB,
    }


def _loss_bytes(config: RunConfig, arch, tokens: int, compute: int, cuda: bool) -> float:
    """What computing the loss holds at its peak.

    CPU, and seq2seq models (a plain Trainer): the logits, their fp32 log-softmax and its gradient.
    Causal models on CUDA: TRL 1.15's fused LM head (trl/kernels/chunked_logprob.py) never builds
    the logits; it projects tiles of at most 4096 tokens x 32768 vocabulary entries (the forward's
    and the backward's tile are not alive together) and accumulates the hidden states' gradient in
    fp32 (the head's too, when it trains). Unsloth patches the same head.
    """
    hidden, _, _, _, vocab = dims(arch)
    if not cuda or getattr(arch, "is_encoder_decoder", False):
        return tokens * vocab * (compute + 8)
    tile = min(tokens, 4096) * min(vocab, 32768) * compute
    head_gradient = 0 if config.uses_adapter else vocab * hidden * 4
    return tile + tokens * hidden * (compute + 4) + head_gradient


def _activation_bytes_per_token(
    config: RunConfig, arch, compute: int, dropout_inputs: int, backend: str = "transformers+peft"
) -> float:
    """What autograd keeps per token for the backward pass.

    Per layer: the input and output of each projection and of the MLP (Korthikanti et al.'s 34·h
    for a 4h MLP, here in explicit widths), 2·h more when the norms' weights train (full
    fine-tuning). Measured on seven Llama shapes with saved-tensor hooks: full = 8h + 2kv + 4mlp floats
    per token and layer exactly, LoRA without dropout 6h + 2kv + 4mlp to within 3%. LoRA dropout also
    keeps each adapted module's dropped-out input and its one-byte mask: 5-5.5 bytes per input element
    measured in fp32 (6h + mlp elements per Llama layer with all-linear; +50% over no dropout).
    Unsloth's fused kernels keep UNSLOTH_ACTIVATION_SHARE of that; with checkpointing, its own
    variant moves each layer's input to CPU memory.
    """
    hidden, layers, mlp, kv, _ = dims(arch)
    per_layer = ((6 if config.uses_adapter else 8) * hidden + 2 * kv + 4 * mlp) * compute
    per_layer += dropout_inputs / layers * (compute + 1)
    if backend == "unsloth":
        per_layer *= UNSLOTH_ACTIVATION_SHARE
    if config.activation_checkpointing:  # each layer's input, plus one layer recomputed at a time
        return per_layer + (0 if backend == "unsloth" else hidden * layers * compute)
    return per_layer * layers


def _flattened_attention_bytes(arch, tokens: int) -> float:
    """Padding-free and packed batches are one row of `tokens`; without flash attention's variable-length
    kernel (any CPU) attention sees a tokens x tokens mask. Measured on a 25M Llama, 8 x 512 tokens
    flattened: +0.6 GB peak RSS over the same batch padded, one fp32 score per head and token pair."""
    return _heads(arch) * tokens**2 * 4


def _compute_bytes(config: RunConfig, cuda: bool) -> int:
    if config.dtype == "fp32" or (config.dtype == "auto" and not cuda):
        return 4
    return 2
