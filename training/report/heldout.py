"""The rows a report runs on: the run's held-out conversations, never what it trained on.

A held-out row is a prompt (earlier turns, with the system prompt training added) and the person's
real reply. The control rows come from the same prompts: the last turn of each prompt was written by
another participant, so it is scored exactly like the person's reply (same system prompt, same
template) with the roles swapped: that turn becomes the assistant's reply, the turns before it the
context (its writer's own turns as assistant, everyone else's as user). A prompt whose other-person
turn opens the conversation gives no control row, as a reply that opens a conversation gives no
training example.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path

from training.errors import UserError


@dataclass
class HeldOut:
    rows: list[dict]  # prompt/completion rows of the person's real replies, system prompt as trained
    train: list[dict]  # the run's training rows (the classifier learns from them, nothing else does)
    where: str  # which file the rows came from, for the report (a file name, never its content)
    available: int  # held-out chat rows before --limit
    left_out_as_trained: int  # rows of --data that were also training rows


def held_out_rows(config, data: str | None = None, limit: int | None = None, seed: int = 0) -> HeldOut:
    """The run's validation rows (or `data`'s), minus any training row, `limit` of them picked with `seed`."""
    from training.train.dataset import load_rows

    config = _data_config(config)
    if data:
        config = dataclasses.replace(config, validation_file=str(data), validation_split=0.0)
    elif not config.has_validation:
        raise UserError(
            f"{config.name or 'run'}: trained without held-out data (no validation file or split); "
            "pass --data VAL.jsonl with conversations it never trained on"
        )
    # Adds the run's system prompt to rows without one, exactly as training did; rows also trained on
    # are left out below rather than refused. The person's own data set only: rows mixed in
    # (knowledge Q&A, raw text) are not their chats.
    rows = load_rows(dataclasses.replace(config, mix=[]), check_leaks=False)
    trained = {_key(row) for row in rows.train if "prompt" in row}
    chat = [row for row in rows.validation if "prompt" in row and row["prompt"][-1]["role"] == "user"]
    kept = [row for row in chat if _key(row) not in trained]
    left_out = len(chat) - len(kept)
    if not kept:
        raise UserError(f"{_name(config)}: no held-out chat rows (prompt + reply) to report on")
    if limit is not None and limit < 1:
        raise UserError(f"limit: {limit}; expected a whole number >= 1")
    if limit is not None and limit < len(kept):
        picked = sorted(random.Random(seed).sample(range(len(kept)), limit))
        kept = [kept[index] for index in picked]
    where = (
        _name(config) if config.validation_file else f"{config.validation_split:.0%} of {Path(config.train_file).name}"
    )
    return HeldOut(kept, rows.train, where, len(chat), left_out)


def _data_config(config):
    """A preference round (dpo/kto) trained on pairs: its conversations are the starting run's data."""
    if not getattr(config, "from_run", ""):
        return config
    from training.train.config import RunConfig

    return dataclasses.replace(RunConfig.from_yaml(Path(config.from_run) / "config.yaml"), name=config.name)


def control_row(row: dict) -> dict | None:
    """The other participant's last turn in `row`'s prompt, as a row whose reply is that turn."""
    system = [m for m in row["prompt"][:1] if m["role"] == "system"]
    turns = [m for m in row["prompt"] if m["role"] != "system"]
    *context, theirs = turns
    swapped = [{"role": "user" if m["role"] == "assistant" else "assistant", "content": m["content"]} for m in context]
    while swapped and swapped[0]["role"] == "assistant":  # chat templates expect the user to speak first
        swapped.pop(0)
    if not swapped:
        return None
    return {"prompt": system + swapped, "completion": [{"role": "assistant", "content": theirs["content"]}]}


def reply_text(row: dict) -> str:
    return "".join(message["content"] for message in row["completion"])


def other_texts(rows: list[dict]) -> list[str]:
    """What the other participants wrote in these rows' prompts (each prompt repeats earlier turns)."""
    return [m["content"] for row in rows if "prompt" in row for m in row["prompt"] if m["role"] == "user"]


def _key(row: dict) -> str:
    return json.dumps([row["prompt"], row["completion"]], sort_keys=True, ensure_ascii=False)


def _name(config) -> str:
    return Path(config.validation_file).name if config.validation_file else Path(config.train_file).name
