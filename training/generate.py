"""Chatting with a trained persona: load a run's model once, stream replies, compare base vs tuned.

`load_chat_model` takes a run folder, an adapter folder, a full model folder or a Hub id and sets it
up the way it was trained (chat template, system prompt, separator). `stream_reply` runs `generate`
in a worker thread and yields the growing reply; `use_adapter=False` answers with the base model
through peft's `disable_adapter()`, so base vs tuned needs one copy of the weights. No gradio here:
the UI and the CLI (`python -m training chat`) both call these functions.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import resolve
from .templates import FALLBACK_STOP_STRINGS, FALLBACK_TEMPLATES, ensure_chat_template

CACHE_SIZE = 2  # models kept loaded: a 0.5B model is ~2 GB in fp32, and the UI compares at most two
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


# ---- decoding settings -----------------------------------------------------------------------------


@dataclass
class DecodingSettings:
    """How a reply is picked. do_sample False = greedy (always the likeliest token, seed 003)."""

    do_sample: bool = False
    temperature: float = 0.7  # sampling only: < 1 sharper, > 1 more random
    top_p: float = 0.9  # sampling only: keep the smallest set of tokens with this much probability
    top_k: int = 50  # sampling only: keep the k likeliest tokens; 0 = no limit
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text; 1 = off
    no_repeat_ngram_size: int = 0  # never repeat an n-gram of this size (seed 004 used 3); 0 = off
    max_new_tokens: int = 128
    seed: int | None = 0  # same seed + settings = same reply; None = different every time

    def validate(self) -> DecodingSettings:
        """Coerce UI numbers (3.0 -> 3) and raise UserError naming every bad field; return self."""
        problems = []
        for name in ("top_k", "no_repeat_ngram_size", "max_new_tokens", "seed"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                setattr(self, name, int(value))
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{name}: {value!r}; expected a whole number")
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                problems.append(f"{name}: {value!r}; expected a number")
        if problems:
            raise UserError("; ".join(problems))
        checks = [
            ("temperature", 0 < self.temperature <= 5, "a number in (0, 5]; choose Greedy for no randomness"),
            ("top_p", 0 < self.top_p <= 1, "a fraction in (0, 1]"),
            ("top_k", self.top_k >= 0, "a whole number >= 0 (0 = no limit)"),
            ("repetition_penalty", 0 < self.repetition_penalty <= 10, "a number in (0, 10], usually 1.0-1.3"),
            ("no_repeat_ngram_size", self.no_repeat_ngram_size >= 0, "a whole number >= 0 (0 = off)"),
            ("max_new_tokens", self.max_new_tokens >= 1, "a whole number >= 1"),
            ("seed", self.seed is None or self.seed >= 0, "a whole number >= 0, or empty for random"),
        ]
        problems = [f"{name}: {getattr(self, name)!r}; expected {what}" for name, ok, what in checks if not ok]
        if problems:
            raise UserError("; ".join(problems))
        return self


PRESETS: dict[str, DecodingSettings] = {
    "Greedy": DecodingSettings(do_sample=False),
    "Balanced": DecodingSettings(do_sample=True, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    "Creative": DecodingSettings(
        do_sample=True, temperature=1.0, top_p=0.95, top_k=0, repetition_penalty=1.15, no_repeat_ngram_size=3
    ),
}


def preset(name: str, **overrides: Any) -> DecodingSettings:
    if name not in PRESETS:
        raise UserError(f"preset: unknown {name!r}; expected one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides).validate()


# Out-of-format prompts: what fine-tuning changed (voice, length) and what it kept (knowledge, skills).
@dataclass(frozen=True)
class Probe:
    name: str
    prompt: str
    why: str


PROBE_PROMPTS: tuple[Probe, ...] = (
    Probe("statement", "The earth is filled with wonder", "seed 004: not a question; is it still your voice?"),
    Probe("general knowledge", "How fast does light travel?", "seed 003's forgetting check: is the knowledge kept?"),
    Probe("coding", "Write a Python function that reverses a string.", "far from chat: does it still follow tasks?"),
    Probe("small talk", "hey! what are you up to this weekend?", "in format: the kind of message it was trained on"),
)


def split_bubbles(text: str, separator: str) -> list[str]:
    """One chat bubble per message of a turn (seed 000's multi-message style); empty pieces dropped."""
    if not separator:
        return [text.strip()] if text.strip() else []
    return [piece.strip() for piece in text.split(separator) if piece.strip()]


# ---- loading --------------------------------------------------------------------------------------


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
        from .config import RunConfig

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
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

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


# ---- prompts --------------------------------------------------------------------------------------


@dataclass
class Prompt:
    messages: list[dict[str, str]]  # what was kept of the history, system prompt first
    text: str
    input_ids: list[int]


def build_prompt(model: ChatModel, history: Sequence[dict], message: str, max_new_tokens: int = 128) -> Prompt:
    """The model's input: history + message, oldest turns dropped until the reply still fits.

    `history` is in OpenAI messages form; a system message in it replaces the run's system prompt.
    """
    turns = _merged_turns([*history, {"role": "user", "content": message}], model.separator)
    # A causal model's reply shares the positions with the prompt; a seq2seq decoder has its own.
    limit = None if model.context_size is None else model.context_size - (0 if model.seq2seq else max_new_tokens)
    if limit is not None and (limit < 1 or max_new_tokens >= model.context_size):
        raise UserError(f"max_new_tokens: {max_new_tokens} leaves no room; the model takes {model.context_size} tokens")
    # A system message in the history (a system-prompt box in the UI) replaces the run's.
    given = [m["content"] for m in history if m.get("role") == "system" and isinstance(m.get("content"), str)]
    system_prompt = given[-1] if given else model.system_prompt
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if model.seq2seq:
        text = model.separator.join(t["content"].replace("\n", model.separator) for t in turns if t["content"])
        model.tokenizer.truncation_side = "left"  # as in training: the newest messages are what it answers
        ids = model.tokenizer(text, truncation=limit is not None, max_length=limit)["input_ids"]
        return Prompt(turns, text, ids)  # as in training: no system prompt for seq2seq
    starts = [index for index, turn in enumerate(turns) if turn["role"] == "user"]  # templates want user first
    low, high = 0, len(starts) - 1  # binary search for the oldest start that fits; the last always tried
    best: Prompt | None = None
    while low <= high:
        middle = (low + high) // 2
        candidate = _render(model, system + turns[starts[middle] :])
        if limit is None or len(candidate.input_ids) <= limit:
            best, high = candidate, middle - 1
        else:
            low = middle + 1
    if best is None:
        raise UserError(
            f"message: too long for this model ({model.context_size} tokens including max_new_tokens "
            f"{max_new_tokens}); shorten it or lower max_new_tokens"
        )
    return best


def _render(model: ChatModel, messages: list[dict[str, str]]) -> Prompt:
    try:
        text = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as error:  # jinja's TemplateError ("roles must alternate") is not a ValueError
        raise UserError(f"chat template: {(str(error).splitlines() or [type(error).__name__])[0]}") from None
    # What apply_chat_template(tokenize=True) does, and what training saw (templates.tokenize_row).
    return Prompt(messages, text, model.tokenizer(text, add_special_tokens=False)["input_ids"])


def _merged_turns(history: Sequence[dict], separator: str) -> list[dict[str, str]]:
    """user/assistant turns with text content; a turn shown as several bubbles becomes one turn again."""
    turns: list[dict[str, str]] = []
    for message in history:
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):  # Gradio can send content as [{"type": "text", "text": ...}] parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if role not in ("user", "assistant") or not isinstance(content, str):
            continue  # system messages (handled by build_prompt), files, tool calls
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": turns[-1]["content"] + separator + content}
        else:
            turns.append({"role": role, "content": content})
    return turns


# ---- generation -----------------------------------------------------------------------------------


def stream_reply(
    model: ChatModel,
    history: Sequence[dict],
    message: str,
    settings: DecodingSettings | None = None,
    use_adapter: bool = True,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    """Yield the reply as it grows (each item is the whole text so far, stripped).

    `use_adapter=False` answers with the base model (needs an adapter). Setting `cancel` stops
    generation at the next token; the worker thread has ended when this generator returns or closes.
    """
    settings = dataclasses.replace(settings or DecodingSettings()).validate()
    if not use_adapter and not model.has_adapter:
        raise UserError(f"base model: {model.name} has no adapter to switch off (a full fine-tune or a plain model)")
    prompt = build_prompt(model, history, message, settings.max_new_tokens)
    streamer = _token_streamer_class()(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    halt = threading.Event()  # set when this generator ends, however it ends
    stop_events = [event for event in (halt, cancel) if event is not None]
    failures: list[BaseException] = []
    worker = threading.Thread(
        target=_generate, args=(model, prompt, settings, use_adapter, streamer, stop_events, failures),
        name="talklike-generate", daemon=True,
    )  # fmt: skip
    worker.start()
    text, shown = "", ""
    try:
        for piece in streamer:
            text += piece
            visible, at_stop = _before_stop(text, model.stop_strings)
            if visible != shown:
                shown = visible
                yield visible
            if at_stop or (cancel is not None and cancel.is_set()):
                break
    finally:  # also runs when the caller stops iterating: never leave generate running
        halt.set()
        worker.join()
    if failures:
        if "out of memory" in str(failures[0]).lower():
            raise UserError("max_new_tokens: out of memory while generating; lower it or start a new chat") from None
        raise failures[0]


def reply(model: ChatModel, history: Sequence[dict], message: str, settings: DecodingSettings | None = None,
          use_adapter: bool = True) -> str:  # fmt: skip
    text = ""
    for text in stream_reply(model, history, message, settings, use_adapter):  # noqa: B007 - the last one
        pass
    return text


def compare_replies(model: ChatModel, history: Sequence[dict], message: str,
                    settings: DecodingSettings | None = None) -> dict[str, str]:  # fmt: skip
    """{"base": ..., "tuned": ...} for the same prompt, settings and seed."""
    return {"base": reply(model, history, message, settings, False), "tuned": reply(model, history, message, settings)}


def _generate(model, prompt, settings, use_adapter, streamer, stop_events, failures) -> None:
    import torch
    from transformers import StoppingCriteriaList

    criteria = StoppingCriteriaList([_event_criteria_class()(stop_events)])
    try:
        # Polled so a request cancelled while waiting behind another one gives up without running.
        while not model.lock.acquire(timeout=0.05):
            if any(event.is_set() for event in stop_events):
                return
        try:
            inputs = torch.tensor([prompt.input_ids], device=model.device)
            extra = {"stop_strings": model.stop_strings, "tokenizer": model.tokenizer} if model.stop_strings else {}
            with _adapter(model, use_adapter), _seeded(settings.seed, model.device):
                model.model.generate(
                    input_ids=inputs, attention_mask=torch.ones_like(inputs), streamer=streamer,
                    generation_config=_generation_config(model, settings), stopping_criteria=criteria, **extra,
                )  # fmt: skip
        finally:
            model.lock.release()
    except BaseException as error:  # noqa: BLE001 - handed to the consumer thread, which re-raises it
        failures.append(error)
    finally:
        streamer.end()  # the consumer's loop always ends, even when generate never ran or failed


def _generation_config(model: ChatModel, settings: DecodingSettings):
    config = copy.deepcopy(model.model.generation_config)  # keeps the model's EOS ids and pad token
    sampling = dict(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    # Greedy: unset the model's own sampling defaults, which transformers would warn are ignored.
    config.update(
        do_sample=settings.do_sample, max_new_tokens=settings.max_new_tokens, max_length=None,
        repetition_penalty=settings.repetition_penalty if settings.repetition_penalty != 1 else None,
        no_repeat_ngram_size=settings.no_repeat_ngram_size or None,
        **(sampling if settings.do_sample else dict.fromkeys(sampling)),
    )  # fmt: skip
    if config.pad_token_id is None:
        config.pad_token_id = model.tokenizer.pad_token_id or model.tokenizer.eos_token_id
    return config


@contextlib.contextmanager
def _adapter(model: ChatModel, enabled: bool) -> Iterator[None]:
    if enabled or not model.has_adapter:
        yield
    else:
        with model.model.disable_adapter():
            yield


@contextlib.contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """Seed sampling without moving the caller's random state (training in the same process)."""
    import torch

    if seed is None:
        yield
        return
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@functools.cache
def _event_criteria_class():
    from transformers import StoppingCriteria

    class EventStoppingCriteria(StoppingCriteria):
        """Stops at the next token once any of the events is set (Stop button, closed stream)."""

        def __init__(self, events: list[threading.Event]):
            self.events = events

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            stop = any(event.is_set() for event in self.events)
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return EventStoppingCriteria


@functools.cache
def _token_streamer_class():
    from transformers import TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        """Passes on text after every token, decoding a short window each time.

        TextStreamer waits for a whole word (delaying the first text by a token or more) and decodes
        the whole line again per token (~3% of generation time at 256 tokens on the 5M model). As in
        text-generation-inference, the tokens shown last are kept as context, so a token's leading
        space decodes right; text ending in an unfinished multi-byte character waits for the rest.
        """

        shown_tokens = 0  # tokens at the start of token_cache whose text has been passed on

        def put(self, value):
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False  # the first call carries the prompt
                return
            self.token_cache.extend(value.reshape(-1).tolist())
            new_text = self._new_text()
            if new_text and not new_text.endswith("\ufffd"):
                self.on_finalized_text(new_text)
                del self.token_cache[: self.shown_tokens]
                self.shown_tokens = len(self.token_cache)

        def end(self):
            new_text = self._new_text()
            self.token_cache, self.shown_tokens, self.next_tokens_are_prompt = [], 0, True
            self.on_finalized_text(new_text, stream_end=True)

        def _new_text(self) -> str:
            shown = self.tokenizer.decode(self.token_cache[: self.shown_tokens], **self.decode_kwargs)
            return self.tokenizer.decode(self.token_cache, **self.decode_kwargs)[len(shown) :]

    return TokenStreamer


def _before_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before any stop string, hiding a trailing start of one; and whether one was reached."""
    for stop in stops:
        if stop in text:
            return text[: text.index(stop)].strip(), True
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                return text[:-size].strip(), False
    return text.strip(), False


# ---- command line ---------------------------------------------------------------------------------


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_MODEL", help="run, adapter or model folder, Hub id, offline-tiny")
    parser.add_argument("--prompt", required=True, help="the message to answer")
    parser.add_argument("--preset", choices=list(PRESETS), default="Balanced", help="starting decoding settings")
    parser.add_argument("--greedy", action="store_true", help="always the likeliest token (deterministic)")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--top-p", type=float, help="nucleus sampling probability mass")
    parser.add_argument("--top-k", type=int, help="sample among the k likeliest tokens; 0 = no limit")
    parser.add_argument("--repetition-penalty", type=float, help="> 1 discourages repeats")
    parser.add_argument("--no-repeat-ngram", type=int, help="never repeat an n-gram of this size")
    parser.add_argument("--max-new-tokens", type=int, help="longest reply in tokens")
    parser.add_argument("--seed", type=int, help="random seed for sampling")
    parser.add_argument("--base", action="store_true", help="answer with the base model (adapter switched off)")


def settings_from_args(args: argparse.Namespace) -> DecodingSettings:
    sampling = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k}
    given_sampling = [f"--{name.replace('_', '-')}" for name, value in sampling.items() if value is not None]
    if args.greedy and given_sampling:
        raise UserError(f"--greedy and {given_sampling[0]}: choose one (greedy does not sample)")
    other = {"repetition_penalty": args.repetition_penalty, "no_repeat_ngram_size": args.no_repeat_ngram,
             "max_new_tokens": args.max_new_tokens, "seed": args.seed}  # fmt: skip
    overrides = {name: value for name, value in {**sampling, **other}.items() if value is not None}
    if given_sampling:
        overrides["do_sample"] = True
    return preset("Greedy" if args.greedy else args.preset, **overrides)


def run_chat_command(args: argparse.Namespace) -> None:
    """`python -m training chat`: print the reply as it is generated."""
    settings = settings_from_args(args)  # before loading, so a bad flag fails fast
    model = load_chat_model(args.source)
    printed = ""
    for text in stream_reply(model, [], args.prompt, settings, use_adapter=not args.base):
        # Stripping can only shorten the end, so each text extends what was printed.
        sys.stdout.write(text[len(printed) :] if text.startswith(printed) else "\n" + text)
        sys.stdout.flush()
        printed = text
    sys.stdout.write("\n")
