"""Chatting with a trained persona: build the prompt, stream replies, base vs tuned.

Loading lives in training/chat/loading.py (`load_chat_model` and friends are re-exported here, where
callers import them); how a reply is picked (DecodingSettings, the named styles) in decoding.py.
`stream_reply` runs `generate` in a worker thread and yields the growing reply; `use_adapter=False`
answers with the base model through peft's `disable_adapter()`, so base vs tuned needs one copy of
the weights. No gradio here: the UI and the CLI (`python -m training chat`) both call these functions.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from training.chat.decoding import DecodingSettings

# Re-exported: callers (CLI, bench, tests, the chat UI) import the loading API from here too.
from training.chat.loading import (  # noqa: F401
    ChatModel,
    clear_model_cache,
    default_device,
    is_loaded,
    load_chat_model,
    load_plan,
)
from training.chat.memory_prompt import ChatMemory, Remembered, with_memory
from training.errors import UserError
from training.prompting import chat_messages, seq2seq_source
from training.templates import render_prompt


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


# ---- prompts --------------------------------------------------------------------------------------


@dataclass
class Prompt:
    messages: list[dict[str, str]]  # what was kept of the history, system prompt first
    text: str
    input_ids: list[int]
    remembered: Remembered | None = None  # the facts and past exchanges it was given (Memory on)


def build_prompt(
    model: ChatModel,
    history: Sequence[dict],
    message: str | dict,
    max_new_tokens: int = 128,
    memory: ChatMemory | None = None,
) -> Prompt:
    """The model's input for history + message, built as its training rows were (prompting.py).

    `history` and a dict `message` are OpenAI messages; a user message's `name` makes it a group chat.
    Within the persona's context window, the oldest turns are dropped until the reply still fits
    the model; a system message in the history replaces the run's system prompt. With `memory`, the
    facts and the past exchanges recalled for the message join the system prompt (memory_prompt.py):
    history goes first when space runs out, then the least relevant memories, then the facts.
    """
    asked = message if isinstance(message, dict) else {"role": "user", "content": message}
    messages = chat_messages([*history, asked], model.prompt)
    # A causal model's reply shares the positions with the prompt; a seq2seq decoder has its own.
    limit = None if model.context_size is None else model.context_size - (0 if model.seq2seq else max_new_tokens)
    if limit is not None and (limit < 1 or max_new_tokens >= model.context_size):
        raise UserError(f"max_new_tokens: {max_new_tokens} leaves no room; the model takes {model.context_size} tokens")
    if model.seq2seq:
        if memory is not None:
            raise UserError(
                f"memory: {model.name} is an encoder-decoder model, trained without a system prompt "
                "to hold memories; use memory with a chat (causal) model"
            )
        return _seq2seq_prompt(model, messages, limit)
    if memory is None:
        best = _fit(model, messages, limit)
    else:
        best = None
        for remembered in memory.remember(str(asked.get("content") or "")).shrinking():
            best = _fit(model, with_memory(messages, remembered), limit)
            if best is not None:
                best.remembered = remembered
                break
    if best is None:
        raise UserError(
            f"message: too long for this model ({model.context_size} tokens including max_new_tokens "
            f"{max_new_tokens}); shorten it or lower max_new_tokens"
        )
    return best


def _fit(model: ChatModel, messages: list[dict[str, str]], limit: int | None) -> Prompt | None:
    """The prompt keeping the most recent turns that fit in `limit` tokens; None when even the last does not."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system) :]
    starts = [index for index, turn in enumerate(turns) if turn["role"] == "user"]  # templates want user first
    low, high = 0, len(starts) - 1  # binary search for the oldest start that fits; the last always tried
    best: Prompt | None = None
    while low <= high:
        middle = (low + high) // 2
        kept = system + turns[starts[middle] :]
        candidate = Prompt(kept, *render_prompt(model.tokenizer, kept))
        if limit is None or len(candidate.input_ids) <= limit:
            best, high = candidate, middle - 1
        else:
            low = middle + 1
    return best


def _seq2seq_prompt(model: ChatModel, messages: list[dict[str, str]], limit: int | None) -> Prompt:
    """As in training (dataset.seq2seq_dataset): the joined messages, cut from the left at the run's max_length."""
    limits = [size for size in (limit, model.trained_length) if size is not None]
    text = seq2seq_source(messages, model.separator)
    model.tokenizer.truncation_side = "left"  # the newest messages are what it answers
    ids = model.tokenizer(text, truncation=bool(limits), max_length=min(limits) if limits else None)["input_ids"]
    return Prompt([m for m in messages if m["role"] != "system"], text, ids)  # no system prompt for seq2seq


# ---- generation -----------------------------------------------------------------------------------


def stream_reply(
    model: ChatModel,
    history: Sequence[dict],
    message: str,
    settings: DecodingSettings | None = None,
    use_adapter: bool = True,
    cancel: threading.Event | None = None,
    usage: dict[str, int] | None = None,
    memory: ChatMemory | None = None,
    on_prompt: Callable[[Prompt], None] | None = None,
) -> Iterator[str]:
    """Yield the reply as it grows (each item is the whole text so far, stripped).

    `use_adapter=False` answers with the base model (needs an adapter). Setting `cancel` stops
    generation at the next token; the worker thread has ended when this generator returns or closes.
    `usage`, if given, receives prompt_tokens and completion_tokens (tokens generated, end marker included).
    `memory` recalls past exchanges into the prompt; `on_prompt(prompt)` is told the prompt (and
    so the memories) before generation starts.
    """
    settings = dataclasses.replace(settings or DecodingSettings()).validate()
    if not use_adapter and not model.has_adapter:
        raise UserError(f"base model: {model.name} has no adapter to switch off (a full fine-tune or a plain model)")
    prompt = build_prompt(model, history, message, settings.max_new_tokens, memory)
    if on_prompt is not None:
        on_prompt(prompt)
    streamer = _token_streamer_class()(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    halt = threading.Event()  # set when this generator ends, however it ends
    stop_events = [event for event in (halt, cancel) if event is not None]
    failures: list[BaseException] = []
    worker = threading.Thread(
        target=_generate,
        args=(model, prompt, settings, use_adapter, streamer, stop_events, failures),
        name="talklike-generate",
        daemon=True,
    )
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
        if usage is not None:
            usage.update(prompt_tokens=len(prompt.input_ids), completion_tokens=streamer.generated)
    if failures:
        if "out of memory" in str(failures[0]).lower():
            raise UserError("max_new_tokens: out of memory while generating; lower it or start a new chat") from None
        raise failures[0]


def reply(model: ChatModel, history: Sequence[dict], message: str, *options: Any, **named: Any) -> str:
    """The whole reply at once: stream_reply's last text, with the same arguments."""
    text = ""
    for text in stream_reply(model, history, message, *options, **named):  # noqa: B007 - the last one
        pass
    return text


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
                    input_ids=inputs,
                    attention_mask=torch.ones_like(inputs),
                    streamer=streamer,
                    generation_config=_generation_config(model, settings),
                    stopping_criteria=criteria,
                    **extra,
                )
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
        do_sample=settings.do_sample,
        max_new_tokens=settings.max_new_tokens,
        max_length=None,
        repetition_penalty=settings.repetition_penalty if settings.repetition_penalty != 1 else None,
        no_repeat_ngram_size=settings.no_repeat_ngram_size or None,
        **(sampling if settings.do_sample else dict.fromkeys(sampling)),
    )
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
        generated = 0  # tokens generated so far (usage counts for the OpenAI endpoint)

        def put(self, value):
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False  # the first call carries the prompt
                return
            self.token_cache.extend(value.reshape(-1).tolist())
            self.generated += value.numel()
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
