"""Held-out loss with teacher forcing: how surprised a model is by the real reply, token by token.

Rows are encoded exactly as training encoded them (templates.tokenize_row for causal models, the
seq2seq encoding of train/dataset.py, the run's max_length), and only the reply's tokens are scored,
so the tuned model's number is its eval loss on these rows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import numpy as np

from training.report.metrics import RowLosses

BATCH_SIZE = 4  # rows per forward pass: logits of a 49k-token vocabulary are ~200 KB per position


class Cancelled(Exception):
    """The user stopped the report."""


def reply_losses(
    model,
    rows: list[dict | None],
    config,
    use_adapter: bool = True,
    cancel: threading.Event | None = None,
    advance: Callable[[int], None] | None = None,
) -> RowLosses:
    """Summed NLL and token count of each row's reply; a None row (no control turn) scores (0, 0).

    `model` is a chat.loading.ChatModel; `use_adapter=False` scores the base (the adapter switched off).
    `advance(rows_done)` is called after each batch, for a progress bar.
    """
    nll = np.zeros(len(rows))
    tokens = np.zeros(len(rows), dtype=np.int64)
    present = [index for index, row in enumerate(rows) if row is not None]
    encoded = _encode(model, [rows[index] for index in present], config)
    for start in range(0, len(present), BATCH_SIZE):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        batch = encoded[start : start + BATCH_SIZE]
        with model.lock, _adapter(model, use_adapter):  # the chat tab may share this model
            sums, counts = _score(model, batch)
        for offset, index in enumerate(present[start : start + BATCH_SIZE]):
            nll[index], tokens[index] = sums[offset], counts[offset]
        if advance is not None:
            advance(len(batch))
    return RowLosses(nll, tokens)


def _encode(model, rows: list[dict], config) -> list[dict[str, list[int]]]:
    """Each row as {input_ids, targets}: targets -100 where not scored (causal) or the decoder labels."""
    if model.seq2seq:
        from training.train.dataset import seq2seq_dataset

        dataset, _ = seq2seq_dataset(model.tokenizer, rows, config, model.separator)
        return [{"input_ids": item["input_ids"], "labels": item["labels"]} for item in dataset]
    from training.templates import tokenize_row

    encoded = []
    for row in rows:
        item = tokenize_row(model.tokenizer, row, config.max_length)
        # Token t is predicted from the ones before it: the first token is never a target.
        targets = [-100] + [
            token if mask else -100 for token, mask in zip(item["input_ids"][1:], item["completion_mask"][1:])
        ]
        encoded.append({"input_ids": item["input_ids"], "targets": targets})
    return encoded


def _score(model, batch: list[dict[str, list[int]]]) -> tuple[list[float], list[int]]:
    import torch
    import torch.nn.functional as F

    def padded(key: str, value: int):
        width = max(len(item[key]) for item in batch)
        return torch.tensor([item[key] + [value] * (width - len(item[key])) for item in batch], device=model.device)

    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    input_ids = padded("input_ids", pad)
    attention = torch.tensor(
        [[1] * len(item["input_ids"]) + [0] * (input_ids.shape[1] - len(item["input_ids"])) for item in batch],
        device=model.device,
    )
    with torch.no_grad():
        if model.seq2seq:
            labels = padded("labels", -100)
            logits = model.model(
                input_ids=input_ids, attention_mask=attention, decoder_input_ids=_decoder_inputs(model, labels)
            ).logits
            targets = labels
        else:
            logits = model.model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
            targets = padded("targets", -100)[:, 1:]
        losses = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    counts = (targets != -100).sum(dim=1)
    return losses.sum(dim=1).tolist(), counts.tolist()


def _decoder_inputs(model, labels):
    """The labels shifted right behind the decoder start token, as the model does itself when given
    labels; done here because passing labels makes a reloaded AdaLoRA adapter fail (stack-facts)."""
    import torch

    config = model.model.config
    start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    shifted = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == -100, config.pad_token_id)


@contextlib.contextmanager
def _adapter(model, enabled: bool) -> Iterator[None]:
    if enabled or not model.has_adapter:
        yield
    else:
        with model.model.disable_adapter():
            yield
