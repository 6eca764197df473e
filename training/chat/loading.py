"""Loading a chat model: from a run folder, its final/ folder, an adapter, a full model or a Hub id.

`load_chat_model` works out what a source is from its files alone (a cheap plan, which is also the
cache key), then loads it the way it was trained: chat template, system prompt, separator, and the
stop strings of a fallback template; in full precision, or in 8 or 4 bits on a GPU it would not fit
otherwise (precision.py). The last CACHE_SIZE models stay loaded, so switching between runs in the
UI does not reload weights.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat.precision import load_arguments, plan_load
from training.errors import UserError
from training.models import load_pretrained, resolve
from training.prompting import PromptStyle, default_separator
from training.templates import (
    FALLBACK_STOP_STRINGS,
    FALLBACK_TEMPLATES,
    ensure_chat_template,
)
from training.train.run_record import read_model_folder, read_run

CACHE_SIZE = 2  # models kept loaded: a 0.5B model is ~2 GB in fp32, and the UI compares at most two


@dataclass
class ChatModel:
    model: Any  # a transformers model, or a peft PeftModel wrapping one
    tokenizer: Any
    name: str  # what to show: run name, folder name or Hub id
    seq2seq: bool  # encoder-decoder (BlenderBot): the prompt is the turns joined by the separator
    has_adapter: bool  # base vs tuned is possible
    prompt: PromptStyle  # how training built its prompts: chat builds them the same way
    stop_strings: list[str]  # a fallback template's end-of-turn text that is not an EOS token
    context_size: int | None  # positions the model attends over (prompt + reply)
    device: str
    trained_length: int | None = None  # the run's max_length: seq2seq inputs were cut there in training
    precision: str = ""  # what the weights were loaded in: fp32, bf16, fp16, 8-bit or 4-bit
    load_note: str = ""  # why that precision, with the memory it takes (precision.plan_load)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def separator(self) -> str:
        """Joins one turn's messages: the reply splits into bubbles on it."""
        return self.prompt.separator


@dataclass(frozen=True)
class _Plan:
    """What to load for a source, worked out from its files alone (cheap: decides cache hits)."""

    name: str
    weights: str  # model folder or Hub id; the adapter folder when `base` is set
    base: str | None
    tokenizer: str
    prompt: PromptStyle | None = None  # None: the model kind's default (nothing says how it was trained)
    chat_template: str = "chatml"  # fallback when the tokenizer has no template
    trained_length: int | None = None
    signature: tuple = ()  # file times, so a retrained run is reloaded


_CACHE: OrderedDict[tuple, ChatModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_chat_model(source: str | os.PathLike, device: str | None = None, load_in: str = "auto") -> ChatModel:
    """The model behind a run folder, adapter folder, model folder or Hub id, from cache if loaded.

    `load_in`: auto | full | 8bit | 4bit (precision.LOAD_MODES); auto quantizes only on a GPU the
    model would not fit in full precision.
    """
    plan = _plan(source)
    device = device or default_device()
    key = (plan, device, load_in)
    with _CACHE_LOCK:  # one load at a time: two big models loading together could run out of memory
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        chat_model = _load(plan, device, load_in)
        _CACHE[key] = chat_model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return chat_model


def is_loaded(source: str | os.PathLike, device: str | None = None, load_in: str = "auto") -> bool:
    """Whether load_chat_model(source, device, load_in) would answer from its cache, with no weights to read."""
    try:
        key = (_plan(source), device or default_device(), load_in)
    except UserError:
        return False  # load_chat_model raises the same error, where the caller shows it
    return key in _CACHE  # no lock: it is held for a whole load, and this must answer during one


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _plan(source: str | os.PathLike) -> _Plan:
    text = resolve(str(source))  # offline-tiny -> its folder; empty -> UserError
    path = Path(text).expanduser()
    if path.is_dir():
        return _plan_folder(path)
    if text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1:
        raise UserError(f"{text}: no such folder; choose a run folder, an adapter or model folder, or a Hub id")
    return _Plan(name=text, weights=text, base=None, tokenizer=text)


def _plan_folder(path: Path) -> _Plan:
    """A run (its final/ model, with the persona it trained on) or any trained model's folder."""
    is_run = (path / "config.yaml").is_file() or (path.name == "final" and (path.parent / "config.yaml").is_file())
    if is_run:
        record = read_run(path)
        if record.model is None:
            raise UserError(f"{record.name}: this run has no final/ model yet; wait for it to finish or pick another")
        folder, name, prompt, base = record.model, record.name, record.prompt, record.base_model
        chat_template, trained_length = record.config.chat_template, record.config.max_length
    else:
        folder = read_model_folder(path)
        if folder is None:
            raise UserError(f"{path.name}: not a run, adapter or model folder (no config.yaml or config.json inside)")
        name, base = path.name, folder.adapter_base or str(folder.info.get("base_model") or "")
        prompt, chat_template, trained_length = folder.prompt(), "chatml", folder.info.get("max_length")
        if folder.adapter and not base:
            raise UserError(f"{path.name}/adapter_config.json: no base_model_name_or_path; which model is the base?")
    if folder.info.get("chat_template") in FALLBACK_TEMPLATES:
        chat_template = folder.info["chat_template"]
    signature = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.path.iterdir() if p.is_file()))
    return _Plan(
        name=name,
        weights=str(folder.path),
        base=base if folder.adapter else None,
        tokenizer=str(folder.path) if folder.has_tokenizer or not folder.adapter else base,
        prompt=prompt,
        chat_template=chat_template,
        trained_length=trained_length if isinstance(trained_length, int) else None,
        signature=signature,
    )


def load_plan(source: str | os.PathLike, load_in: str = "auto", device: str | None = None):
    """How `source` would load (precision.LoadPlan), from its config alone and without any download."""
    from transformers import AutoConfig

    plan = _plan(source)
    config = load_pretrained(AutoConfig.from_pretrained, plan.base or plan.weights, plan.name, local_files_only=True)
    return plan_load(config, load_in, device or default_device())


def _load(plan: _Plan, device: str, load_in: str) -> ChatModel:
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    base_source = plan.base or plan.weights
    config = load_pretrained(AutoConfig.from_pretrained, base_source, plan.name)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    loader = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    precision = plan_load(config, load_in, device)
    model = load_pretrained(loader.from_pretrained, base_source, plan.name, **load_arguments(precision, device))
    if plan.base is not None:
        from peft import PeftModel

        model = load_pretrained(lambda adapter: PeftModel.from_pretrained(model, adapter), plan.weights, plan.name)
    if precision.mode == "full":  # quantized weights were placed while loading
        model.to(device)
    model.eval()
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, plan.tokenizer, plan.name)
    if not seq2seq:
        ensure_chat_template(tokenizer, fallback=plan.chat_template)
    return ChatModel(
        model=model,
        tokenizer=tokenizer,
        name=plan.name,
        seq2seq=seq2seq,
        has_adapter=plan.base is not None,
        prompt=plan.prompt or PromptStyle(separator=default_separator(seq2seq)),
        stop_strings=_stop_strings(tokenizer, model),
        context_size=_context_size(model.config, tokenizer),
        device=device,
        trained_length=plan.trained_length,
        precision=precision.label,
        load_note=precision.note,
    )


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
