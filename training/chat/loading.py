"""Loading a chat model: from a run folder, its final/ folder, an adapter, a full model or a Hub id.

`load_chat_model` works out what a source is from its files alone (a cheap plan, which is also the
cache key), then loads it the way it was trained: chat template, system prompt, separator, and the
stop strings of a fallback template. The last CACHE_SIZE models stay loaded, so switching between
runs in the UI does not reload weights.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.models import resolve
from training.templates import (
    FALLBACK_STOP_STRINGS,
    FALLBACK_TEMPLATES,
    ensure_chat_template,
)

CACHE_SIZE = 2  # models kept loaded: a 0.5B model is ~2 GB in fp32, and the UI compares at most two
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass
class ChatModel:
    model: Any  # a transformers model, or a peft PeftModel wrapping one
    tokenizer: Any
    name: str  # what to show: run name, folder name or Hub id
    seq2seq: bool  # encoder-decoder (BlenderBot): the prompt is the turns joined by `separator`
    has_adapter: bool  # base vs tuned is possible
    system_prompt: str
    separator: str  # joins one turn's messages: split_bubbles and the seq2seq prompt use it
    stop_strings: list[str]  # a fallback template's end-of-turn text that is not an EOS token
    context_size: int | None  # positions the model attends over (prompt + reply)
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class _Plan:
    """What to load for a source, worked out from its files alone (cheap: decides cache hits)."""

    name: str
    weights: str  # model folder or Hub id; the adapter folder when `base` is set
    base: str | None
    tokenizer: str
    system_prompt: str = ""
    # Only seq2seq runs join messages with the run's separator; causal chat turns keep the persona
    # step's newlines inside one message.
    separator: str = ""
    chat_template: str = "chatml"  # fallback when the tokenizer has no template
    signature: tuple = ()  # file times, so a retrained run is reloaded


_CACHE: OrderedDict[tuple, ChatModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_chat_model(source: str | os.PathLike, device: str | None = None) -> ChatModel:
    """The model behind a run folder, adapter folder, model folder or Hub id, from cache if loaded."""
    plan = _plan(source)
    device = device or default_device()
    key = (plan, device)
    with _CACHE_LOCK:  # one load at a time: two big models loading together could run out of memory
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        chat_model = _load(plan, device)
        _CACHE[key] = chat_model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return chat_model


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _plan(source: str | os.PathLike) -> _Plan:
    text = resolve(str(source))  # offline-tiny -> its folder; empty -> UserError
    path = Path(text).expanduser()
    if path.name == "final" and (path.parent / "config.yaml").is_file():
        path = path.parent  # the run's final/ folder: the run's config has the system prompt
    if path.is_dir():
        return _plan_folder(path)
    if text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1:
        raise UserError(f"{text}: no such folder; choose a run folder, an adapter or model folder, or a Hub id")
    return _Plan(name=text, weights=text, base=None, tokenizer=text)


def _plan_folder(path: Path) -> _Plan:
    settings: dict[str, Any] = {}
    model_dir, run_model = path, None
    if (path / "config.yaml").is_file():
        from training.train.config import RunConfig

        config = RunConfig.from_yaml(path / "config.yaml")
        system_prompt = config.system_prompt or _system_prompt_in(config.train_file)
        settings = dict(system_prompt=system_prompt, separator=config.separator, chat_template=config.chat_template)
        model_dir, run_model = path / "final", config.model
        if not model_dir.is_dir():
            raise UserError(f"{path.name}: this run has no final/ model yet; wait for it to finish or pick another")
    card = _read_json(model_dir / "talklike.json")  # written by the trainer next to the result
    if card.get("system_prompt"):
        settings["system_prompt"] = card["system_prompt"]
    if card.get("separator"):
        settings["separator"] = card["separator"]
    if card.get("chat_template") in FALLBACK_TEMPLATES:
        settings["chat_template"] = card["chat_template"]
    signature = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in model_dir.iterdir() if p.is_file()))
    if (model_dir / "adapter_config.json").is_file():
        base = _adapter_base(model_dir, run_model)
    elif (model_dir / "config.json").is_file():
        base = None
    else:
        raise UserError(f"{path.name}: not a run, adapter or model folder (no config.yaml or config.json inside)")
    has_tokenizer = any((model_dir / name).is_file() for name in _TOKENIZER_FILES)
    return _Plan(
        name=path.name, weights=str(model_dir), base=base, tokenizer=str(model_dir) if has_tokenizer else base,
        signature=signature, **settings,
    )  # fmt: skip


def _adapter_base(adapter_dir: Path, run_model: str | None) -> str:
    base = str(_read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path") or "")
    # A local base that has moved (another data folder) is found again through the run's model name.
    if run_model and (not base or (Path(base).is_absolute() and not Path(base).exists())):
        base = resolve(run_model)
    if not base:
        raise UserError(f"{adapter_dir.name}/adapter_config.json: no base_model_name_or_path; which model is the base?")
    return base


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path.name}: not valid JSON ({error})") from None
    return data if isinstance(data, dict) else {}


def _system_prompt_in(train_file: str) -> str:
    """The system message of the first training row: the persona step may have put it in the data."""
    try:
        with open(train_file, encoding="utf-8") as handle:
            row = json.loads(handle.readline())
        first = (row.get("prompt") or row["messages"])[0]  # prompt/completion or messages rows
        return first["content"] if first["role"] == "system" else ""
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return ""  # data moved or not chat rows: chat without a system prompt, as a plain run would


def _load(plan: _Plan, device: str) -> ChatModel:
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    base_source = plan.base or plan.weights
    config = _pretrained(AutoConfig.from_pretrained, base_source, plan.name)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    loader = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    dtype = torch.float32
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model = _pretrained(loader.from_pretrained, base_source, plan.name, dtype=dtype)
    if plan.base is not None:
        from peft import PeftModel

        model = _pretrained(PeftModel.from_pretrained, model, plan.name, model_id=plan.weights)
    model.to(device).eval()
    tokenizer = _pretrained(AutoTokenizer.from_pretrained, plan.tokenizer, plan.name)
    if not seq2seq:
        ensure_chat_template(tokenizer, fallback=plan.chat_template)
    return ChatModel(
        model=model, tokenizer=tokenizer, name=plan.name, seq2seq=seq2seq, has_adapter=plan.base is not None,
        system_prompt=plan.system_prompt, separator=(plan.separator or "|") if seq2seq else "\n",
        stop_strings=_stop_strings(tokenizer, model),
        context_size=_context_size(model.config, tokenizer), device=device,
    )  # fmt: skip


def _pretrained(loader, source: Any, name: str, **kwargs: Any) -> Any:
    try:
        return loader(source, **kwargs)
    except (OSError, ValueError) as error:
        where = "folder" if os.path.exists(str(kwargs.get("model_id", source))) else "Hub id"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"model {name!r}: cannot load it as a {where} ({first_line[:200]})") from None


def _stop_strings(tokenizer: Any, model: Any) -> list[str]:
    """End-of-turn text of a fallback template that the model's EOS ids do not already cover."""
    name = next((key for key, text in FALLBACK_TEMPLATES.items() if text == tokenizer.chat_template), None)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    stops = FALLBACK_STOP_STRINGS.get(name, [])
    return [text for text in stops if tokenizer.convert_tokens_to_ids(text) not in eos_ids]


def _context_size(config: Any, tokenizer: Any) -> int | None:
    sizes = [getattr(config, name, None) for name in ("max_position_embeddings", "n_positions")]
    sizes.append(tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)  # else "unset"
    known = [size for size in sizes if isinstance(size, int) and size > 0]
    return min(known) if known else None
