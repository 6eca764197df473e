"""Loading the model a RunConfig names and putting the chosen method on it.

Backends: Unsloth's FastLanguageModel where it can run (CUDA, installed, causal LoRA/rsLoRA/QLoRA),
else transformers + peft. Methods: LoRA and its DoRA / rsLoRA variants, AdaLoRA (ranks pruned as
it trains), QLoRA (frozen base in 4 or 8 bits, CUDA + bitsandbytes), full fine-tuning.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import torch

from training.errors import UserError
from training.models import load_pretrained, resolve
from training.train.config import RunConfig

# peft has no default targets for these (seed 000 had to list BlenderBot's by hand).
AUTO_TARGETS = {
    "blenderbot": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "blenderbot-small": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}
UNSLOTH_METHODS = ("lora", "rslora", "qlora")  # Unsloth has no DoRA or AdaLoRA path


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    source: str  # what from_pretrained was given (offline-tiny resolved to its folder)
    seq2seq: bool
    backend: str  # "unsloth" or "transformers+peft", shown in the log and status
    template: str  # chat template in use: "tokenizer" or a fallback name


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    bf16: bool

    @classmethod
    def detect(cls) -> Hardware:
        cuda = torch.cuda.is_available()
        return cls(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def precision(config: RunConfig, hardware: Hardware) -> str:
    """fp32 | bf16 | fp16: what the run computes in."""
    if config.dtype == "auto":
        return ("bf16" if hardware.bf16 else "fp16") if hardware.cuda else "fp32"
    if config.dtype == "fp16" and not hardware.cuda:
        raise UserError("dtype: fp16 needs a CUDA GPU; use fp32 (or bf16) on CPU")
    if config.dtype == "bf16" and hardware.cuda and not hardware.bf16:
        raise UserError("dtype: this GPU has no bf16; use fp16 or auto")
    return config.dtype


def check_environment(config: RunConfig, hardware: Hardware) -> None:
    """Refuse, before any download, what this machine cannot do."""
    needs_bnb = config.method == "qlora" or config.optimizer == "adamw_8bit"
    what = "method qlora" if config.method == "qlora" else "optimizer adamw_8bit"
    if needs_bnb and not hardware.cuda:
        raise UserError(f"{what}: needs a CUDA GPU with bitsandbytes; on CPU use method lora and adamw_torch")
    if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"{what}: needs bitsandbytes; pip install bitsandbytes")
    if config.use_unsloth == "on" and not hardware.cuda:
        raise UserError("use_unsloth: 'on' needs a CUDA GPU; set auto or off to train with transformers + peft")
    if config.report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise UserError("report_to: tensorboard is not installed; pip install tensorboard or set report_to none")
    precision(config, hardware)  # fp16 on CPU, bf16 on an old GPU


def load_tokenizer(config: RunConfig, hardware: Hardware) -> Loaded:
    """The tokenizer (with a chat template) first, so the data can be counted before the model exists.

    Unsloth loads model and tokenizer together: then `model` is already set, adapter included.
    """
    from transformers import AutoConfig

    source = resolve(config.model)
    model_config = load_pretrained(AutoConfig.from_pretrained, source, config.model)
    seq2seq = bool(getattr(model_config, "is_encoder_decoder", False))
    if _wants_unsloth(config, hardware, seq2seq):
        loaded = _load_unsloth(config, source, precision(config, hardware))
        if loaded is not None:
            return loaded
    tokenizer = _load_tokenizer(source, config)
    template = "tokenizer" if seq2seq else _ensure_template(tokenizer, config)
    return Loaded(None, tokenizer, source, seq2seq, "transformers+peft", template)


def load_model(loaded: Loaded, config: RunConfig, hardware: Hardware, total_steps: int) -> Any:
    """The model with the method applied; `total_steps` sizes AdaLoRA's rank schedule."""
    if loaded.model is None:
        model = _load_model(config, loaded.source, loaded.seq2seq, precision(config, hardware))
        if config.uses_adapter:
            model = _with_adapter(model, config, loaded.seq2seq, total_steps)
        loaded.model = model
    return loaded.model


def _load_tokenizer(source: str, config: RunConfig):
    from transformers import AutoTokenizer

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, config.model)
    if tokenizer.pad_token is None:  # GPT-2 and Llama have none; padding positions never enter the loss
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _ensure_template(tokenizer, config: RunConfig) -> str:
    from training.templates import ensure_chat_template

    # A base model (gpt2, Mistral-7B-v0.1) has no template: the preset's fallback gives it the seed's format.
    return ensure_chat_template(tokenizer, fallback=config.chat_template)


def _load_model(config: RunConfig, source: str, seq2seq: bool, compute: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    kwargs: dict[str, Any] = {}
    # Adapters train on a frozen base, which can sit in the compute dtype; full fine-tuning keeps
    # fp32 master weights and lets autocast do bf16/fp16 (fp16 weights cannot be unscaled).
    if config.uses_adapter and compute != "fp32":
        kwargs["dtype"] = torch.bfloat16 if compute == "bf16" else torch.float16
    if config.method == "qlora":
        kwargs["quantization_config"] = _quantization(config, kwargs.get("dtype", torch.float32))
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    loader = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = load_pretrained(loader.from_pretrained, source, config.model, **kwargs)
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.activation_checkpointing)
    model.config.use_cache = False  # the cache is for generation; with checkpointing it only warns
    return model


def _quantization(config: RunConfig, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    if config.quantization_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )  # fmt: skip


def target_modules(config: RunConfig, model_type: str) -> str | list[str] | None:
    """None lets peft pick its default for the architecture; "all-linear" is every linear but the head."""
    if config.target_modules == "auto":
        if model_type in AUTO_TARGETS:
            return list(AUTO_TARGETS[model_type])
        from peft.utils.constants import (
            TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known,
        )

        return None if model_type in known else "all-linear"
    return config.target_modules


def adapter_config(config: RunConfig, model_type: str, seq2seq: bool, total_steps: int = 0):
    from peft import AdaLoraConfig, LoraConfig, TaskType

    common = dict(
        lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, bias="none",
        target_modules=target_modules(config, model_type),
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
    )  # fmt: skip
    if config.method == "adalora":
        # Warm up at full rank for the first 10% of steps, prune during the middle, and let the
        # final 20% fine-tune the pruned ranks (the AdaLoRA paper's tinit / tfinal schedule).
        tinit, tfinal = total_steps // 10, total_steps // 5
        return AdaLoraConfig(
            init_r=config.adalora_init_r, target_r=config.adalora_target_r, total_step=total_steps,
            tinit=tinit, tfinal=tfinal, deltaT=max(1, total_steps // 50), **common,
        )  # fmt: skip
    return LoraConfig(
        r=config.lora_r, use_dora=config.method == "dora", use_rslora=config.method == "rslora", **common
    )


def _with_adapter(model, config: RunConfig, seq2seq: bool, total_steps: int):
    from peft import get_peft_model

    if config.activation_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings + checkpointing would give no gradients
    return get_peft_model(model, adapter_config(config, model.config.model_type, seq2seq, total_steps))


# ---- Unsloth ------------------------------------------------------------------------------------


def import_unsloth_first(config: RunConfig, hardware: Hardware) -> None:
    """Unsloth patches transformers and TRL when imported, so it has to be imported before them.

    Failure is ignored here: _load_unsloth imports again and reports why it falls back.
    """
    if config.use_unsloth != "off" and hardware.cuda and config.method in UNSLOTH_METHODS:
        try:
            import unsloth  # noqa: F401
        except Exception:  # noqa: BLE001, S110 - reported by _load_unsloth
            pass


def _wants_unsloth(config: RunConfig, hardware: Hardware, seq2seq: bool) -> bool:
    if config.use_unsloth == "off" or seq2seq or config.method not in UNSLOTH_METHODS:
        if config.use_unsloth == "on":
            print(f"talklike: unsloth not used: it does not train {config.method} or seq2seq models", flush=True)
        return False
    return hardware.cuda


def _load_unsloth(config: RunConfig, source: str, compute: str) -> Loaded | None:
    """Unsloth's patched model, or None (with the reason printed) to fall back to transformers+peft."""
    try:  # importing unsloth without a GPU raises; it also patches transformers, so only here
        from unsloth import FastLanguageModel
    except Exception as error:  # noqa: BLE001 - any import failure means "use the other backend"
        if config.use_unsloth == "on":
            raise UserError(f"use_unsloth: 'on' but unsloth cannot be imported ({error}); pip install unsloth") from None
        print(f"talklike: unsloth unavailable ({type(error).__name__}: {error}); using transformers+peft", flush=True)
        return None
    quantized = {"load_in_4bit": config.method == "qlora" and config.quantization_bits == 4}
    if config.method == "qlora" and config.quantization_bits == 8:
        quantized["load_in_8bit"] = True
    dtype = torch.bfloat16 if compute == "bf16" else torch.float16 if compute == "fp16" else None
    model, tokenizer = load_pretrained(
        lambda name: FastLanguageModel.from_pretrained(model_name=name, max_seq_length=config.max_length,
                                                       dtype=dtype, **quantized),
        source, config.model,
    )  # fmt: skip
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = _ensure_template(tokenizer, config)
    targets = target_modules(config, model.config.model_type)
    if targets in (None, "all-linear"):  # Unsloth wants names; these are the Llama-family linears
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, bias="none", use_rslora=config.method == "rslora",
        use_gradient_checkpointing="unsloth" if config.activation_checkpointing else False,
        random_state=config.seed, max_seq_length=config.max_length,
    )  # fmt: skip
    return Loaded(model, tokenizer, source, False, "unsloth", template)
