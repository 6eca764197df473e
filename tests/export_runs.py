"""Finished run folders for the export tests, built by hand the way training/train/trainer.py leaves them.

    <run>/config.yaml  metrics.jsonl  status.json  train.jsonl  final/{adapter or model, tokenizer, talklike.json}

The adapter is really trained (a few AdamW steps on chat text) so merging it changes the weights;
the logits of the trained in-memory model are kept as the reference every export must reproduce.
Built once per test session (cached here: pytest would build a fixture imported into two modules twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

SECRET_LINE = "my door code is 4921, don't tell anyone"  # appears only in the training data
CHAT = [{"role": "user", "content": "hey Sam, are we still on for tonight?"}]
_CACHE: dict[tuple, TrainedRun] = {}
_BASES: dict[str, Path] = {}


@dataclass
class TrainedRun:
    path: Path
    base: Path
    inputs: dict[str, torch.Tensor]  # what the reference logits were computed on
    logits: torch.Tensor
    seq2seq: bool = False


def tiny_base(factory, arch: str = "llama") -> Path:
    from training.tiny import build_tiny_model, builtin_corpus

    if arch not in _BASES:
        _BASES[arch] = build_tiny_model(factory.mktemp(f"base-{arch}"), arch=arch, corpus=builtin_corpus())
    return _BASES[arch]


def model_inputs(tokenizer, seq2seq: bool) -> dict[str, torch.Tensor]:
    if seq2seq:
        batch = tokenizer("hey Sam|are we still on for tonight?", return_tensors="pt")
        return {**batch, "decoder_input_ids": torch.tensor([[1, 5, 9, 14]])}
    return tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt", return_dict=True)


def adapter_run(factory, method: str = "lora", arch: str = "llama") -> TrainedRun:
    """A completed run whose final/ is a trained peft adapter on the tiny `arch` model."""
    key = ("adapter", method, arch)
    if key not in _CACHE:
        _CACHE[key] = _build_adapter_run(factory.mktemp(f"run-{method}-{arch}"), tiny_base(factory, arch), method, arch)
    return _CACHE[key]


def _build_adapter_run(root: Path, base: Path, method: str, arch: str) -> TrainedRun:
    from peft import AdaLoraConfig, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    seq2seq = arch == "blenderbot"
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(base)
    common = dict(lora_alpha=8, lora_dropout=0.0, task_type="SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM")
    if method == "adalora":
        adapter = AdaLoraConfig(
            init_r=6,
            target_r=2,
            total_step=6,
            tinit=1,
            tfinal=1,
            deltaT=1,
            target_modules=["q_proj", "v_proj"],
            **common,
        )
    else:
        targets = ["q_proj", "v_proj", "fc1"] if seq2seq else "all-linear"
        adapter = LoraConfig(r=4, target_modules=targets, use_dora=method == "dora", **common)
    model = get_peft_model(model, adapter)
    metrics = _train(model, tokenizer, seq2seq, adalora=method == "adalora")
    model.eval()
    inputs = model_inputs(tokenizer, seq2seq)
    with torch.no_grad():
        logits = model(**inputs).logits
    run = _write_run_folder(root / "my-run", base, method, seq2seq, metrics)
    model.save_pretrained(run / "final")
    tokenizer.save_pretrained(run / "final")
    return TrainedRun(run, base, inputs, logits, seq2seq)


def _train(model, tokenizer, seq2seq: bool, adalora: bool, steps: int = 6) -> list[dict]:
    texts = ["hey Sam, are we still on for tonight?", "yes! see you at 7 lol", SECRET_LINE]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    metrics = []
    for step in range(1, steps + 1):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        if adalora:  # AdaLoRA prunes ranks here, with gradients still present (stack-facts)
            model.base_model.update_and_allocate(step)
        optimizer.zero_grad()
        record = {
            "step": step,
            "loss": round(loss.item(), 4),
            "eval_loss": None,
            "learning_rate": 5e-3,
            "epoch": step / 3,
        }
        if step % 3 == 0:
            record["eval_loss"] = round(loss.item() + 0.25 - step * 0.01, 4)
        metrics.append(record)
    return metrics


def full_run(factory) -> TrainedRun:
    """A completed method-full run: final/ is a whole model (the base with its head nudged)."""
    if ("full",) not in _CACHE:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = tiny_base(factory)
        model = AutoModelForCausalLM.from_pretrained(base)
        with torch.no_grad():
            model.lm_head.weight.mul_(1.5)
        tokenizer = AutoTokenizer.from_pretrained(base)
        run = _write_run_folder(factory.mktemp("run-full") / "full-run", base, "full", False, [])
        model.save_pretrained(run / "final")
        tokenizer.save_pretrained(run / "final")
        inputs = model_inputs(tokenizer, False)
        with torch.no_grad():
            _CACHE[("full",)] = TrainedRun(run, base, inputs, model.eval()(**inputs).logits)
    return _CACHE[("full",)]


def _write_run_folder(run: Path, base: Path, method: str, seq2seq: bool, metrics: list[dict]) -> Path:
    from training.train.config import RunConfig

    (run / "final").mkdir(parents=True)
    train_file = run / "train.jsonl"
    rows = [
        {
            "prompt": [{"role": "user", "content": "what's the code?"}],
            "completion": [{"role": "assistant", "content": SECRET_LINE}],
        }
    ] * 12
    train_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    validation_file = run / "validation.jsonl"
    validation_file.write_text("".join(json.dumps(row) + "\n" for row in rows[:3]), encoding="utf-8")
    config = RunConfig(
        name=run.name,
        model=str(base),
        method=method,
        lora_r=4,
        lora_alpha=8,
        learning_rate=5e-3,
        max_steps=6,
        batch_size=3,
        train_file=str(train_file),
        validation_file=str(validation_file),
        output_dir=str(run),
        system_prompt="You are Sam. Reply the way Sam texts.",
    )
    config.save(run / "config.yaml")
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    evals = [m["eval_loss"] for m in metrics if m.get("eval_loss") is not None]
    status = {
        "state": "completed",
        "step": len(metrics),
        "examples": 12,
        "best_eval_loss": min(evals) if evals else None,
    }
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
    info = {
        "base_model": str(base),
        "model": str(base),
        "method": method,
        "seq2seq": seq2seq,
        "chat_template": "tokenizer",
        "system_prompt": config.system_prompt,
        "separator": "|" if seq2seq else None,
        "max_length": 512,
        "run": run.name,
    }
    (run / "final" / "talklike.json").write_text(json.dumps(info), encoding="utf-8")
    return run
