"""Preference data for a DPO or KTO round, in TRL's conversational formats.

    paired (DPO)     {"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...]}
    unpaired (KTO)   {"prompt": [messages], "completion": [{"role": "assistant", ...}], "label": true|false}

Two sources. The person's feedback (feedback.py): a rewrite is a pair, chosen = what they would
really have said, rejected = the reply; for KTO a thumb up is a desirable example, a thumb down an
undesirable one, and a rewrite both. The held-out conversations (report/heldout.py): chosen = the
person's real reply, rejected = the tuned model's greedy reply to the same prompt, generated now, in
batches (as in self-play fine-tuning, SPIN). A pair whose two sides are the same text teaches nothing
and is left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.chat.feedback import read_feedback
from training.errors import UserError

DEFAULT_MAX_NEW_TOKENS = 64  # a chat reply; the report generates with the same bound


@dataclass
class Pairs:
    rows: list[dict[str, Any]]
    sources: dict[str, int] = field(default_factory=dict)  # rows per source, for the summary line
    skipped_same: int = 0  # held-out prompts the model already answered with the real reply


def _say(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def feedback_pairs(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One DPO row per rewrite: chosen = the rewrite, rejected = the reply it rewrote."""
    return [
        {"prompt": entry["prompt"], "chosen": _say(entry["rewrite"]), "rejected": _say(entry["reply"])}
        for entry in entries
        if entry["verdict"] == "rewrite" and entry["rewrite"].strip() != entry["reply"].strip()
    ]


def feedback_unpaired(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO rows: 👍 desirable, 👎 undesirable, a rewrite both (the rewrite desirable, the reply not)."""
    rows = []
    for entry in entries:
        if entry["verdict"] in ("up", "down"):
            rows.append(
                {"prompt": entry["prompt"], "completion": _say(entry["reply"]), "label": entry["verdict"] == "up"}
            )
        else:
            rows.append({"prompt": entry["prompt"], "completion": _say(entry["rewrite"]), "label": True})
            rows.append({"prompt": entry["prompt"], "completion": _say(entry["reply"]), "label": False})
    return rows


def unpaired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair as two KTO rows, the chosen side desirable and the rejected side not."""
    return [
        {"prompt": row["prompt"], "completion": row[side], "label": side == "chosen"}
        for row in rows
        for side in ("chosen", "rejected")
    ]


def finished_run(run: str | os.PathLike):
    """The run's record, checked to have a trained model in final/ (pairs need its replies and data)."""
    from training.train.run_record import read_run

    record = read_run(run)
    if record.model is None:
        state = record.status.get("state", "created")
        raise UserError(f"{record.path}: no trained model in final/ yet (run is {state}); pairs need a finished run")
    return record


def build_pairs(
    run: str | os.PathLike,
    from_feedback: bool = False,
    from_heldout: int | None = None,
    kto: bool = False,
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    advance: Callable[[int, int], None] | None = None,
) -> Pairs:
    """The preference rows of a finished run, from its feedback and/or `from_heldout` held-out prompts."""
    if not from_feedback and from_heldout is None:
        raise UserError("pairs: choose a source: --from-feedback and/or --from-heldout N")
    record = finished_run(run)
    result = Pairs(rows=[])
    if from_feedback:
        entries = read_feedback(record.path)
        rows = feedback_unpaired(entries) if kto else feedback_pairs(entries)
        if not rows:
            what = "judgements (👍, 👎 or rewrites)" if kto else "rewrites (✏️ say it like me)"
            raise UserError(
                f"{record.name}: no feedback {what} yet; give some in the Chat tab, or use --from-heldout N"
            )
        result.rows += rows
        result.sources["feedback"] = len(rows)
    if from_heldout is not None:
        pairs, result.skipped_same = heldout_pairs(record, from_heldout, seed, max_new_tokens, advance)
        rows = unpaired(pairs) if kto else pairs
        result.rows += rows
        result.sources["heldout"] = len(rows)
    return result


def heldout_pairs(
    record,
    count: int,
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    advance: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """`count` held-out prompts: chosen = the real reply, rejected = the tuned model's greedy reply."""
    from training.chat.batch import generate_batch
    from training.chat.decoding import preset
    from training.chat.generate import load_chat_model
    from training.report.heldout import held_out_rows, reply_text

    if count < 1:
        raise UserError(f"--from-heldout: {count}; expected a whole number >= 1")
    held_out = held_out_rows(record.config, seed=seed)
    if count > len(held_out.rows):
        raise UserError(
            f"--from-heldout: {count} is more than the {len(held_out.rows)} held-out conversations of "
            f"{record.name} ({held_out.where}); use at most {len(held_out.rows)}"
        )
    rows = held_out_rows(record.config, limit=count, seed=seed).rows
    model = load_chat_model(record.path)
    requests = [(row["prompt"][:-1], row["prompt"][-1]["content"]) for row in rows]
    progress = (lambda done: advance(done, len(requests))) if advance else None
    replies = generate_batch(model, requests, preset("Greedy", max_new_tokens=max_new_tokens), advance=progress)
    pairs = [
        {"prompt": row["prompt"], "chosen": row["completion"], "rejected": _say(reply)}
        for row, reply in zip(rows, replies)
        if reply.strip() != reply_text(row).strip()
    ]
    return pairs, len(rows) - len(pairs)


def write_pairs(rows: list[dict[str, Any]], out: str | os.PathLike) -> Path:
    from training.data.persona import write_jsonl  # atomic: a temp file renamed into place

    return write_jsonl(rows, out)
