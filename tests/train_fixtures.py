"""Tiny persona data and micro models for the training tests (CPU, a fraction of a second a step).

Its fixtures (data, llama, blenderbot) reach every test module through conftest.py's pytest_plugins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.tiny import train_tokenizer
from training.train.config import RunConfig

PAIRS = [
    ("are you coming tonight?", "yeah omw\nsave me a seat"),
    ("did you see the game", "lol no\nspoilers pls"),
    ("dinner at 7?", "ya sounds good"),
    ("how was work", "long\nsend snacks"),
    ("you up?", "always lol"),
    ("movie tomorrow?", "omg yes\nwhich one"),
]


# Held out: other exchanges, so the leak check before every run finds none of them in training.
HELD_OUT_PAIRS = [
    ("where are you", "stuck in traffic\n10 min"),
    ("call me later?", "sure after 6"),
    ("did you eat", "not yet lol"),
    ("new phone who dis", "haha very funny"),
]


def persona_rows(count: int, offset: int = 0, pairs: list = PAIRS) -> list[dict]:
    rows = []
    for index in range(offset, offset + count):
        question, answer = pairs[index % len(pairs)]
        rows.append(
            {
                "prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": question}],
                "completion": [{"role": "assistant", "content": answer}],
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("persona")
    return {
        "train": write_jsonl(folder / "sam.jsonl", persona_rows(48)),
        "validation": write_jsonl(folder / "sam.val.jsonl", persona_rows(8, pairs=HELD_OUT_PAIRS)),
    }


def _corpus() -> list[str]:
    return [m["content"] for row in persona_rows(12) for m in row["prompt"] + row["completion"]] * 4


def micro_model(out: Path, arch: str) -> Path:
    """tiny.py's tokenizer and chat template on a ~0.1M-parameter model.

    build_tiny_model's ~4M-parameter models cost ~0.3 s a step on this 2-core machine; these
    train the same code paths ten times faster.
    """
    from transformers import (
        BlenderbotConfig,
        BlenderbotForConditionalGeneration,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = train_tokenizer(_corpus(), vocab_size=300, model_max_length=256)
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            **special,
        )
        model = LlamaForCausalLM(config)
    else:
        config = BlenderbotConfig(
            vocab_size=len(tokenizer),
            d_model=64,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            max_position_embeddings=256,
            decoder_start_token_id=tokenizer.eos_token_id,
            **special,
        )
        model = BlenderbotForConditionalGeneration(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return micro_model(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def blenderbot(tmp_path_factory) -> Path:
    return micro_model(tmp_path_factory.mktemp("bb"), "blenderbot")


def tiny_config(tmp_path: Path, model: Path, data: dict[str, Path], **fields) -> RunConfig:
    settings = dict(
        model=str(model),
        train_file=str(data["train"]),
        output_dir=str(tmp_path / "run"),
        max_length=64,
        batch_size=8,
        max_steps=4,
        learning_rate=3e-3,
        logging_steps=1,
        save_steps=2,
        eval_steps=2,
        target_modules="all-linear",
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        dtype="fp32",
        seed=0,
    )
    return RunConfig(**{**settings, **fields})


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
