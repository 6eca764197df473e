"""Turning a finished run into a folder others can load: the adapter alone, or the merged model.

    export_run(run_dir, out_dir, merge=False)   adapter (a few MB) + tokenizer + card
    export_run(run_dir, out_dir, merge=True)    base + adapter merged into plain transformers weights

Either folder carries the tokenizer (with its chat template), the generation config, talklike.json
(how the run chats: system prompt, template) and a model card (modelcard.py), so
`AutoModelForCausalLM.from_pretrained(folder)` / `AutoPeftModelForCausalLM.from_pretrained(folder)`
work as they are. An export is written to a hidden sibling folder and renamed into place only when
complete: a crash or a full disk never leaves a half-written export behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.models import load_pretrained
from training.train.run_record import RunRecord, write_model_info
from training.train.run_record import read_run as read_record

MB = 1_000_000
DEFAULT_SHARD_SIZE = "5GB"  # the Hub's recommended upper bound per file
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# What an adapter export copies from final/: the adapter, tokenizer and chat template; never
# trainer state (optimizer, RNG) or anything else a run folder may hold.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """The run at `run_dir` (a path, or a run name under the runs folder), checked to have final/."""
    record = read_record(run_dir)
    if record.model is None:
        state = record.status.get("state", "created")
        raise UserError(
            f"{record.path}: no trained model in final/ yet (run is {state}); export it once training has finished"
        )
    return record


# ---- sizes ------------------------------------------------------------------------------------


def export_sizes(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Sizes in MB for the UI: the adapter export, and the merged export (estimated from the base).

    `merged_mb` is None when the base's size cannot be known offline (a Hub id not in the cache).
    """
    source = read_run(run_dir)
    support = _folder_bytes(source.final_dir, lambda p: not p.name.endswith(WEIGHT_SUFFIXES))
    if not source.adapter:
        full = _folder_bytes(source.final_dir, lambda p: p.name.endswith(WEIGHT_SUFFIXES)) + support
        return {"adapter_mb": None, "merged_mb": round(full / MB, 2), "method": source.config.method}
    adapter = sum(
        (source.final_dir / name).stat().st_size for name in ADAPTER_FILES if (source.final_dir / name).is_file()
    )
    base = base_weight_bytes(source.base_model, source.seq2seq)
    return {
        "adapter_mb": round((adapter + support) / MB, 2),
        "merged_mb": round((base + support) / MB, 2) if base is not None else None,
        "method": source.config.method,
    }


def _folder_bytes(folder: Path, keep) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and keep(p))


def base_weight_bytes(base_model: str, seq2seq: bool = False) -> int | None:
    """Bytes of the base model's weights: its files for a folder, else parameters x dtype size."""
    folder = Path(base_model)
    if folder.is_dir():
        weights = [p for p in folder.iterdir() if p.suffix == ".safetensors"] or [
            p for p in folder.iterdir() if p.suffix == ".bin"
        ]
        if weights:
            return sum(p.stat().st_size for p in weights)
    try:  # a Hub id: count parameters on the meta device, from the (cached) config only
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        config = AutoConfig.from_pretrained(base_model, local_files_only=True)  # training cached it; no network wait
        loader = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        with torch.device("meta"):
            model = loader.from_config(config)
        dtype = getattr(config, "dtype", None) or torch.float32
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        return sum(p.numel() for p in model.parameters()) * torch.empty(0, dtype=dtype).element_size()
    except Exception:  # noqa: BLE001 - an estimate for display; unknown is an honest answer
        return None


# ---- export -----------------------------------------------------------------------------------


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    merge: bool,
    *,
    samples: list[dict[str, str]] | None = None,
    report_examples: bool = False,
    repo_id: str | None = None,
    overwrite: bool = False,
    max_shard_size: str | int = DEFAULT_SHARD_SIZE,
) -> Path:
    """Write the run's adapter (merge=False) or merged model (merge=True) to `out_dir`; return it.

    `samples` are replies the user chose to show in the model card ({"prompt", "reply"}); nothing
    else from the training data is written, unless `report_examples` asks for the persona report's
    side-by-side examples (held-out chats) in the card. `repo_id` names the model in the card's usage code
    (push() rewrites it when the folder goes to another repo). A full fine-tune exports the same
    way with either value of `merge`: there is nothing to merge.
    """
    from training.export.modelcard import check_samples, write_model_card

    source = read_run(run_dir)
    samples = check_samples(samples)
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"out: {out} already exists and is not empty; choose another folder or overwrite it")
    merged = merge or not source.adapter
    needed = _needed_bytes(source, merged)
    with _staged(out, needed) as stage:
        if not source.adapter:
            _copy_full_model(source, stage)
        elif merge:
            _write_merged(source, stage, max_shard_size)
        else:
            _copy_adapter(source, stage)
        _write_tokenizer(source, stage)
        _write_generation_config(source, stage)
        model_id = repo_id or out.name
        info = {
            **source.info,
            "export": "merged" if merged else "adapter",
            "model_id": model_id,
            "model": _shareable(source.config.model),
            "base_model": _shareable(source.base_model),
        }
        write_model_info(stage, info)  # the prompt settings only: the data's manifest stays private
        write_model_card(
            source, stage, merged=merged, model_id=model_id, samples=samples, report_examples=report_examples
        )
    return out


def _shareable(model: str) -> str:
    """A Hub id as is; a local folder only by its name (a full path shows home folders and user names)."""
    return Path(model).name if Path(model).expanduser().exists() else model


def _needed_bytes(source: RunRecord, merged: bool) -> int:
    sizes = export_sizes(source.path)
    value = sizes["merged_mb"] if merged else sizes["adapter_mb"]
    return int((value or 0) * MB) + 2 * MB  # + the card, the plot, talklike.json


@contextmanager
def _staged(out: Path, needed: int) -> Iterator[Path]:
    """A hidden sibling folder to write into, renamed to `out` only when everything is written."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"out: cannot create {parent} ({error.strerror})") from None
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise UserError(_disk_full_message(out, needed, free))
    stage = parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        _replace_folder(stage, out)
    except BaseException as error:
        shutil.rmtree(stage, ignore_errors=True)
        if _is_disk_full(error):
            raise UserError(_disk_full_message(out, needed, shutil.disk_usage(parent).free)) from None
        raise


def _replace_folder(stage: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # safetensors (Rust) reports io errors as SafetensorError with the OS text inside.
    text = str(error)
    return "No space left on device" in text or "StorageFull" in text or "os error 28" in text


def _disk_full_message(out: Path, needed: int, free: int) -> str:
    return (
        f"out: not enough disk space for {out}: the export needs about {needed / MB:,.0f} MB and "
        f"{free / MB:,.0f} MB are free in {out.parent}; free some space or choose a folder on another disk"
    )


def _copy_adapter(source: RunRecord, stage: Path) -> None:
    copied = [name for name in ADAPTER_FILES if (source.final_dir / name).is_file()]
    if not any(name.startswith("adapter_model") for name in copied):
        raise UserError(
            f"{source.final_dir}: adapter_config.json without adapter weights; the run did not finish saving"
        )
    for name in copied:
        shutil.copy2(source.final_dir / name, stage / name)


def _copy_full_model(source: RunRecord, stage: Path) -> None:
    for path in source.final_dir.iterdir():
        is_model_file = path.name.endswith(WEIGHT_SUFFIXES) or path.name in (
            "config.json",
            "model.safetensors.index.json",
        )
        if path.is_file() and is_model_file and path.name != "training_args.bin":
            shutil.copy2(path, stage / path.name)


def load_run_model(source: RunRecord, merged: bool = False):
    """The run's model as it chats: base + adapter (a PeftModel), merged into plain weights if asked."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    loader = AutoModelForSeq2SeqLM if source.seq2seq else AutoModelForCausalLM
    if not source.adapter:
        return load_pretrained(loader.from_pretrained, str(source.final_dir), source.name, dtype="auto")
    from peft import PeftModel

    base = load_pretrained(loader.from_pretrained, source.base_model, dtype="auto")
    model = load_pretrained(
        lambda adapter: PeftModel.from_pretrained(base, adapter), str(source.final_dir), source.name
    )
    model.eval()
    return model.merge_and_unload() if merged else model


def _write_merged(source: RunRecord, stage: Path, max_shard_size: str | int) -> None:
    model = load_run_model(source, merged=True)
    model.config.use_cache = True  # training switched it off; generation wants it back
    model.save_pretrained(stage, max_shard_size=max_shard_size)


def _write_tokenizer(source: RunRecord, stage: Path) -> None:
    """The tokenizer the run trained with (chat template included), from final/ or rebuilt from the base."""
    if (source.final_dir / "tokenizer_config.json").is_file():
        for name in TOKENIZER_FILES:
            if (source.final_dir / name).is_file():
                shutil.copy2(source.final_dir / name, stage / name)
        return
    from transformers import AutoTokenizer

    from training.templates import ensure_chat_template

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source.base_model)
    if not source.seq2seq:  # the same fallback the run trained with (methods._ensure_template)
        ensure_chat_template(tokenizer, fallback=source.config.chat_template)
    tokenizer.save_pretrained(stage)


def _write_generation_config(source: RunRecord, stage: Path) -> None:
    """generation_config.json: the run's or the base's (stop tokens, pad id), else one from the tokenizer."""
    if (stage / "generation_config.json").is_file():  # save_pretrained of a merged model wrote it
        return
    from transformers import AutoTokenizer, GenerationConfig

    for origin in (source.final_dir, source.base_model):
        try:
            GenerationConfig.from_pretrained(origin).save_pretrained(stage)
            return
        except (OSError, ValueError):
            continue
    tokenizer = AutoTokenizer.from_pretrained(stage)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id).save_pretrained(stage)


def read_samples(path: str | os.PathLike) -> list[dict[str, str]]:
    """Sample replies from a JSONL file (or a JSON list), each {"prompt": ..., "reply": ...}."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path.name}: cannot read ({error.strerror})") from None
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"{path.name}: not valid JSON ({error.msg})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UserError(f"{path.name} line {number}: not valid JSON ({error.msg})") from None
    return rows
