"""Loading the model a RunConfig names and putting the chosen method on it.

Backends: Unsloth's FastLanguageModel where it can run (CUDA, installed, causal LoRA/rsLoRA/QLoRA
in bf16/fp16), else transformers + peft, with the reason in the log and status.json. Methods: LoRA
and its DoRA / rsLoRA variants, AdaLoRA (ranks pruned as it trains), QLoRA (frozen base in 4 or 8
bits, CUDA + bitsandbytes), full fine-tuning.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

from training.errors import UserError
from training.models import load_pretrained, resolve
from training.paths import subdir
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
    backend_note: str = ""  # why not Unsloth, when use_unsloth is not off and it is not used


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
    reason = unsloth_unused_reason(config, hardware, seq2seq)
    if reason is None:
        try:
            return _load_unsloth(config, source, precision(config, hardware))
        except UnslothUnavailable as unavailable:
            reason = str(unavailable)
        _fall_back_from_unsloth(config, reason)
    elif config.use_unsloth == "on":
        raise UserError(f"use_unsloth: 'on' but {reason}; set auto or off to train with transformers + peft")
    elif config.use_unsloth == "auto":
        print(f"talklike: not using Unsloth: {reason}", flush=True)
    tokenizer = _load_tokenizer(source, config)
    template = "tokenizer" if seq2seq else _ensure_template(tokenizer, config)
    note = reason if config.use_unsloth != "off" else ""
    return Loaded(None, tokenizer, source, seq2seq, "transformers+peft", template, note)


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
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


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
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias="none",
        target_modules=target_modules(config, model_type),
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
    )
    if config.method == "adalora":
        # Warm up at full rank for the first 10% of steps, prune during the middle, and let the
        # final 20% fine-tune the pruned ranks (the AdaLoRA paper's tinit / tfinal schedule).
        tinit, tfinal = total_steps // 10, total_steps // 5
        return AdaLoraConfig(
            init_r=config.adalora_init_r,
            target_r=config.adalora_target_r,
            total_step=total_steps,
            tinit=tinit,
            tfinal=tfinal,
            deltaT=max(1, total_steps // 50),
            **common,
        )
    return LoraConfig(r=config.lora_r, use_dora=config.method == "dora", use_rslora=config.method == "rslora", **common)


def _with_adapter(model, config: RunConfig, seq2seq: bool, total_steps: int):
    from peft import get_peft_model

    if config.activation_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings + checkpointing would give no gradients
    return get_peft_model(model, adapter_config(config, model.config.model_type, seq2seq, total_steps))


# ---- Unsloth ------------------------------------------------------------------------------------

# Unsloth's fast kernels know these architectures' linear layers by name; for any other
# architecture it is given peft's "all-linear" (a Llama name list would match nothing there).
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")


class UnslothUnavailable(Exception):
    """Unsloth cannot train this run here; the message says why (shown in the log and status)."""


def unsloth_unused_reason(config: RunConfig, hardware: Hardware, seq2seq: bool = False) -> str | None:
    """Why this run will not train through Unsloth, or None when it should try."""
    if config.use_unsloth == "off":
        return "use_unsloth is off"
    if config.method not in UNSLOTH_METHODS:
        return f"Unsloth does not train method {config.method} (only {', '.join(UNSLOTH_METHODS)})"
    if seq2seq:
        return "Unsloth does not train encoder-decoder (seq2seq) models"
    if not hardware.cuda:
        return "no CUDA GPU"
    if precision(config, hardware) == "fp32":  # Unsloth's dtype=None means bf16/fp16, never fp32
        return "dtype fp32: Unsloth trains in bf16 or fp16"
    return None


def import_unsloth_first(config: RunConfig, hardware: Hardware) -> None:
    """Unsloth patches transformers, TRL and peft when imported, so the training process imports it
    before any of them (trainer._train calls this first). Failure is ignored here: _load_unsloth
    imports again and reports why it falls back.
    """
    if unsloth_unused_reason(config, hardware) is not None:
        return
    # Unsloth writes generated trainer code to ./unsloth_compiled_cache in the current folder, and
    # downloads a README from the Hub on import to count users; neither belongs in a user's folder.
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", str(subdir("cache") / "unsloth_compiled"))
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    early = [name for name in ("transformers", "trl", "peft") if name in sys.modules]
    if early:
        print(f"talklike: warning: {', '.join(early)} imported before unsloth; its patches may not apply", flush=True)
    try:
        import unsloth  # noqa: F401
    except Exception:  # noqa: BLE001, S110 - reported by _load_unsloth
        pass


def unsloth_targets(config: RunConfig, model_type: str) -> str | list[str]:
    """Unsloth's target_modules: never None (peft's per-architecture default is not applied there)."""
    targets = target_modules(config, model_type)
    if targets is None or targets == "all-linear":
        return list(LLAMA_LINEARS) if model_type in LLAMA_LIKE else "all-linear"
    return targets


def _fall_back_from_unsloth(config: RunConfig, reason: str) -> None:
    """UserError if use_unsloth is 'on'; else say why and free what Unsloth left on the GPU."""
    if config.use_unsloth == "on":
        raise UserError(f"use_unsloth: 'on' but {reason}; set auto or off to train with transformers + peft")
    print(f"talklike: {reason}; training with transformers+peft instead", flush=True)
    gc.collect()  # a half-loaded Unsloth model must not sit in GPU memory next to the fallback
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_unsloth(config: RunConfig, source: str, compute: str) -> Loaded:
    try:  # imported early by import_unsloth_first; here only to reach it (or its import error)
        from unsloth import FastLanguageModel
    except Exception as error:  # noqa: BLE001 - any import failure means "use the other backend"
        raise UnslothUnavailable(f"Unsloth cannot be imported ({_one_line(error)})") from None
    checkpointing = "unsloth" if config.activation_checkpointing else False
    model = tokenizer = failure = None
    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=source,
            max_seq_length=config.max_length,
            dtype=torch.bfloat16 if compute == "bf16" else torch.float16,
            load_in_4bit=config.method == "qlora" and config.quantization_bits == 4,  # Unsloth's default is True
            load_in_8bit=config.method == "qlora" and config.quantization_bits == 8,
            # Without it Unsloth swaps known Hub ids for its own repos, and the adapter would record those.
            use_exact_model_name=True,
            use_gradient_checkpointing=checkpointing,
            random_state=config.seed,
            # No token=: an explicit token makes Unsloth call huggingface_hub.login(), which saves it to disk.
            **({"local_files_only": True} if os.path.isdir(source) else {}),
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=unsloth_targets(config, model.config.model_type),
            bias="none",
            use_rslora=config.method == "rslora",
            use_gradient_checkpointing=checkpointing,
            random_state=config.seed,
        )
    except torch.OutOfMemoryError:
        raise  # the fallback would not fit either; the run ends with the out-of-memory hint
    except Exception as error:  # noqa: BLE001 - e.g. no valid pad token, unknown architecture or Hub name
        failure = f"Unsloth could not load {config.model} ({_one_line(error)})"
    if failure:  # raised outside the except block, so no traceback keeps the half-loaded model alive
        del model, tokenizer
        raise UnslothUnavailable(failure)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(model, tokenizer, source, False, "unsloth", _ensure_template(tokenizer, config))


def _one_line(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
