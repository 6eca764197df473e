"""Rendering rows with a chat template, and exactly which tokens the loss sees.

`tokenize_row` reproduces TRL 1.15 SFTTrainer's dataset preparation token for token (the tests build a
real SFTTrainer and compare), so the preview, the length statistics and the training run agree:
- chat rows ({"prompt": [...], "completion": [...]}): the prompt is rendered with the generation
  prompt, then prompt+completion; tokens after their common prefix are trained. No EOS is added:
  the template's own end-of-turn marker (e.g. `<|im_end|>`) is what teaches the model to stop.
- text rows ({"text": ...}): the text plus the tokenizer's EOS (unless it already ends with it),
  tokenized with the tokenizer's special tokens (a BOS, for tokenizers that add one); all trained.
- `max_length` keeps the first tokens (TRL's truncation_mode="keep_start"); TRL then drops rows with
  no trained token left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.cancel import check_cancelled
from training.errors import UserError

TRAINED = "trained"
CUT_OFF = "cut off"
# Length statistics tokenize at most this many characters (~0.5M tokens, about a second here):
# rows past it are left out of the sample, so a preview never costs more than that.
STATS_CHAR_BUDGET = 2_000_000
_STATS_BATCH = 256  # rows per tokenizer call; a Cancel is noticed between calls

# Assistant text sits inside {% generation %} so that `return_assistant_tokens_mask` and TRL's
# assistant_only_loss also work. Each assistant turn ends with a stop marker inside that block,
# because TRL adds no EOS to chat rows: without it the model never learns to end its reply.
# Where the assistant header ends with a space in the seed format ("<bot>: hi"), the space is
# moved into the reply so the prompt ends on a token boundary and stays a prefix of the full text.
_SYSTEM_FOLDED = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set folded = messages[0]['content'] + '\\n\\n' + messages[1]['content'] -%}"
    "{%- set messages = [{'role': messages[1]['role'], 'content': folded}] + messages[2:] -%}"
    "{%- endif -%}"
)
_EOS = "{%- if eos_token %}{{ eos_token }}{% endif -%}"

FALLBACK_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}"
        "{{ '<|im_start|>assistant\\n' }}"
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
        "{%- else -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif -%}"
    ),
    "alpaca": (
        "{%- if messages[0]['role'] == 'system' -%}{{ messages[0]['content'] + '\\n\\n' }}"
        "{%- else -%}{{ 'Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\\n\\n' }}"
        "{%- endif -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
        "{%- elif message['role'] == 'assistant' -%}{{ '### Response:\\n' }}"
        "{% generation %}{{ message['content'] }}" + _EOS + "{% endgeneration %}{{ '\\n\\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '### Response:\\n' }}{% endif -%}"
    ),
    "openchatkit": (  # seed 002: "<human>: ...\n<bot>: ...\n"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n' }}"
        "{%- elif message['role'] == 'user' -%}{{ '<human>: ' + message['content'] + '\\n' }}"
        "{%- else -%}{{ '<bot>:' }}"
        "{% generation %}{{ ' ' + message['content'] }}" + _EOS + "{% endgeneration %}{{ '\\n' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %}{{ '<bot>:' }}{% endif -%}"
    ),
    "question_answer": (  # seed 004: "Question: {prompt}. Answer: {response}"
        _SYSTEM_FOLDED + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{%- if not loop.first %}{{ '\\n' }}{% endif -%}"
        "{{ 'Question: ' + message['content'] + '. Answer:' }}"
        "{%- else -%}{% generation %}{{ ' ' + message['content'] }}" + _EOS + "{% endgeneration %}"
        "{%- endif -%}"
        "{%- endfor -%}"
    ),
    "mistral_inst": (  # seed 003: "<s>[INST] ... [/INST] ...</s>"
        _SYSTEM_FOLDED + "{%- if bos_token %}{{ bos_token }}{% endif -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{%- else -%}{% generation %}{{ ' ' + message['content'] }}" + _EOS + "{% endgeneration %}"
        "{%- endif -%}"
        "{%- endfor -%}"
    ),
}

# Text that ends the bot's turn under each fallback, for generation code that stops on strings.
FALLBACK_STOP_STRINGS: dict[str, list[str]] = {
    "chatml": ["<|im_end|>"],
    "alpaca": ["### Instruction:"],
    "openchatkit": ["<human>:"],
    "question_answer": ["Question:"],
    "mistral_inst": ["[INST]"],
}


def ensure_chat_template(tokenizer: Any, fallback: str = "chatml", *, replace: bool = False) -> str:
    """The name of the template in use: "tokenizer" for the tokenizer's own, else `fallback` (now set).

    `replace=True` puts the named fallback in place even when the tokenizer has its own template.
    """
    if fallback not in FALLBACK_TEMPLATES:
        raise UserError(f"template: unknown {fallback!r}; expected one of {', '.join(FALLBACK_TEMPLATES)}")
    if getattr(tokenizer, "chat_template", None) and not replace:
        return "tokenizer"
    tokenizer.chat_template = FALLBACK_TEMPLATES[fallback]
    return fallback


@dataclass
class _Encoded:
    text: str  # the string that was tokenized
    ids: list[int]
    trained_from: int  # index of the first trained token
    offsets: list[tuple[int, int]] | None
    added: list[bool] | None  # True for tokens the tokenizer added around the text (BOS/EOS)


def tokenize_row(tokenizer: Any, row: dict, max_length: int | None = None) -> dict[str, list[int]]:
    """input_ids and completion_mask (1 = in the loss) exactly as TRL's SFTTrainer prepares `row`.

    A result whose mask is all 0 (a prompt filling max_length) is a row TRL drops.
    """
    encoded = _encode(tokenizer, [row])[0]
    mask = [0] * encoded.trained_from + [1] * (len(encoded.ids) - encoded.trained_from)
    return {"input_ids": encoded.ids[:max_length], "completion_mask": mask[:max_length]}


def render_loss_mask(tokenizer: Any, row: dict, max_length: int | None = None) -> list[tuple[str, str | None]]:
    """The row as the model sees it, as (text, label) runs for gr.HighlightedText.

    Labels: "trained" (in the loss), None (context only), "cut off" (past max_length). The texts
    concatenate to the rendered row (preceded by any BOS the tokenizer itself adds).
    """
    encoded = _encode(tokenizer, [row], with_offsets=True)[0]
    labels = [
        CUT_OFF
        if max_length is not None and index >= max_length
        else TRAINED
        if index >= encoded.trained_from
        else None
        for index in range(len(encoded.ids))
    ]
    if encoded.offsets is None:
        return _runs_by_decoding(tokenizer, encoded.ids, labels)
    return _runs_by_offsets(tokenizer, encoded, labels)


def length_stats(
    tokenizer: Any, rows: list[dict], max_length: int | None, char_budget: int = STATS_CHAR_BUDGET
) -> dict[str, Any]:
    """Token lengths of the rows as trained, and what max_length does to them.

    count: rows measured (the first rows within `char_budget` characters, at least one);
    over_max: rows longer than max_length (truncated); dropped: rows left with no trained token
    (TRL skips them); trained_tokens: tokens in the loss after truncation.
    """
    rows = _within_budget(rows, char_budget)
    encoded: list[_Encoded] = []
    for start in range(0, len(rows), _STATS_BATCH):
        check_cancelled()
        encoded += _encode(tokenizer, rows[start : start + _STATS_BATCH], first=start + 1, numbered=len(rows) > 1)
    lengths = np.array([len(item.ids) for item in encoded], dtype=np.int64)
    limit = max_length if max_length is not None else int(lengths.max(initial=0))
    starts = np.array([item.trained_from for item in encoded], dtype=np.int64)
    trained = np.clip(np.minimum(lengths, limit) - starts, 0, None)
    if not len(lengths):
        summary = dict.fromkeys(["mean", "median", "p90", "p99", "max"], 0)
    else:
        summary = {
            "mean": float(lengths.mean()),
            "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)),
            "p99": float(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
        }
    return {
        "count": len(lengths),
        **summary,
        "over_max": int((lengths > limit).sum()),
        "dropped": int((trained == 0).sum()),
        "trained_tokens": int(trained.sum()),
        "histogram": _histogram(lengths),
    }


def _within_budget(rows: list[dict], char_budget: int) -> list[dict]:
    """The leading rows whose text adds up to at most `char_budget` characters (at least one row)."""
    total = 0
    for count, row in enumerate(rows):
        total += _row_chars(row)
        if total > char_budget and count:
            return rows[:count]
    return rows


def _row_chars(row: Any) -> int:
    if not isinstance(row, dict):
        return 0  # _encode names the bad row
    if isinstance(row.get("text"), str):
        return len(row["text"])
    messages = [*(row.get("prompt") or []), *(row.get("completion") or [])]
    return sum(len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))


def _histogram(lengths: np.ndarray, buckets: int = 20) -> list[tuple[int, int, int]]:
    """(start, end, count) buckets of equal integer width; end is exclusive."""
    if not len(lengths):
        return []
    width = max(1, -(-(int(lengths.max()) + 1) // buckets))
    counts = np.bincount(lengths // width)
    return [(index * width, (index + 1) * width, int(count)) for index, count in enumerate(counts)]


def _row_kind(row: Any, name: str = "row") -> str:
    if not isinstance(row, dict):
        raise UserError(f"{name}: expected a dict with prompt/completion or text, got {type(row).__name__}")
    # None counts as absent: a datasets table that mixes both kinds fills the other kind's columns with None.
    if row.get("prompt") is not None or row.get("completion") is not None:
        for key in ("prompt", "completion"):
            messages = row.get(key)
            if not isinstance(messages, list) or not messages or not all(_is_message(m) for m in messages):
                raise UserError(f"{name}: {key!r} must be a non-empty list of {{role, content}} messages")
        return "chat"
    if isinstance(row.get("text"), str):
        return "text"
    raise UserError(f"{name}: expected 'prompt'+'completion' messages or a 'text' string, got keys {sorted(row)}")


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict) and isinstance(message.get("role"), str) and isinstance(message.get("content"), str)
    )


def _encode(
    tokenizer: Any, rows: list[dict], with_offsets: bool = False, first: int = 1, numbered: bool | None = None
) -> list[_Encoded]:
    """Render and tokenize rows in two batched tokenizer calls (chat rows, text rows).

    apply_chat_template(tokenize=True), which TRL calls, is render + tokenizer(text,
    add_special_tokens=False); doing the two steps ourselves lets the tokenizer batch and give offsets.
    """
    numbered = len(rows) > 1 if numbered is None else numbered  # errors name "row N" among several
    kinds = [_row_kind(row, f"row {number}" if numbered else "row") for number, row in enumerate(rows, start=first)]
    results: list[_Encoded | None] = [None] * len(rows)
    chat_at = [index for index, kind in enumerate(kinds) if kind == "chat"]
    text_at = [index for index, kind in enumerate(kinds) if kind == "text"]
    offsets = with_offsets and bool(getattr(tokenizer, "is_fast", False))
    if chat_at:
        prompts = _render(tokenizer, [rows[i]["prompt"] for i in chat_at], add_generation_prompt=True)
        fulls = _render(tokenizer, [rows[i]["prompt"] + rows[i]["completion"] for i in chat_at])
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        full = tokenizer(fulls, add_special_tokens=False, return_offsets_mapping=offsets)
        for n, index in enumerate(chat_at):
            start = _common_prefix_length(prompt_ids[n], full["input_ids"][n])
            results[index] = _Encoded(fulls[n], full["input_ids"][n], start, *_positions(full, n, offsets))
    if text_at:
        texts = [_with_eos(rows[i]["text"], tokenizer.eos_token) for i in text_at]
        full = tokenizer(texts, return_offsets_mapping=offsets)
        for n, index in enumerate(text_at):
            results[index] = _Encoded(texts[n], full["input_ids"][n], 0, *_positions(full, n, offsets))
    return results  # type: ignore[return-value]


def render_prompt(tokenizer: Any, messages: list[dict]) -> tuple[str, list[int]]:
    """A prompt's text and token ids, ready for the reply: the ids a training row's prompt has."""
    text = _render(tokenizer, [messages], add_generation_prompt=True)[0]
    return text, tokenizer(text, add_special_tokens=False)["input_ids"]


def _render(tokenizer: Any, conversations: list[list[dict]], add_generation_prompt: bool = False) -> list[str]:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=add_generation_prompt)
    except (ValueError, TemplateError) as error:  # no template; "roles must alternate" (not a ValueError)
        raise UserError(f"chat template: {(str(error).splitlines() or [type(error).__name__])[0]}") from None


def _positions(batch: Any, n: int, wanted: bool) -> tuple[list[tuple[int, int]] | None, list[bool] | None]:
    if not wanted:
        return None, None
    offsets = [(int(start), int(end)) for start, end in batch["offset_mapping"][n]]
    return offsets, [sequence is None for sequence in batch.sequence_ids(n)]


def _with_eos(text: str, eos_token: str | None) -> str:
    return text + eos_token if eos_token and not text.endswith(eos_token) else text


def _common_prefix_length(ids: list[int], other_ids: list[int]) -> int:
    # Same rule as trl.data_utils.common_prefix_length; hand-written so previews need not import trl.
    length = 0
    for left, right in zip(ids, other_ids):
        if left != right:
            break
        length += 1
    return length


def _runs_by_offsets(tokenizer: Any, encoded: _Encoded, labels: list[str | None]) -> list[tuple[str, str | None]]:
    """Cut the rendered text at token ends, so a character split over two tokens stays whole.

    Only token ends are used: some tokenizers trim leading spaces out of their offsets.
    """
    runs: list[tuple[str, str | None]] = []
    in_text = [not added for added in encoded.added or []]
    last_in_text = max((index for index, flag in enumerate(in_text) if flag), default=-1)
    cursor = 0
    for index, (label, (_, end)) in enumerate(zip(labels, encoded.offsets or [])):
        if not in_text[index]:  # a special token the tokenizer added itself (BOS), not in the text
            _append_run(runs, tokenizer.convert_ids_to_tokens(encoded.ids[index]), label)
            continue
        stop = len(encoded.text) if index == last_in_text else max(cursor, end)
        _append_run(runs, encoded.text[cursor:stop], label)
        cursor = stop
    return runs


def _runs_by_decoding(tokenizer: Any, ids: list[int], labels: list[str | None]) -> list[tuple[str, str | None]]:
    # Slow tokenizers give no offsets: decode each run of equal labels instead.
    runs: list[tuple[str, str | None]] = []
    start = 0
    for index in range(1, len(ids) + 1):
        if index == len(ids) or labels[index] != labels[start]:
            _append_run(runs, tokenizer.decode(ids[start:index]), labels[start])
            start = index
    return runs


def _append_run(runs: list[tuple[str, str | None]], piece: str, label: str | None) -> None:
    if not piece:
        return
    if runs and runs[-1][1] == label:
        runs[-1] = (runs[-1][0] + piece, label)
    else:
        runs.append((piece, label))
