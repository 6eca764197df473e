"""Replying to many chat histories at once, with the model loaded once: `chat RUN --prompts IN --out OUT`.

Each input line is `{"messages": [...]}`, a history in OpenAI messages form whose last message is
the one to answer (from the user); each output line is the input line with `"reply"` added. The
whole input is checked before the model loads, and the output is written only when every reply is
done, so a bad line or a stopped run never leaves half a file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from training.errors import UserError

ROLES = ("system", "user", "assistant")


def read_histories(path: str | os.PathLike) -> list[dict]:
    """The input lines, each checked: a one-line UserError names the file, line and what was expected."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"--prompts: {path} does not exist") from None
    except UnicodeDecodeError:
        raise UserError(f"{path.name}: not UTF-8 text; expected JSONL with one {{\"messages\": [...]}} per line") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: not valid JSON ({error.msg})") from None
        _check_history(record, where)
        records.append(record)
    if not records:
        raise UserError(f"{path.name}: no lines; expected one {{\"messages\": [...]}} per line")
    return records


def _check_history(record, where: str) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
        raise UserError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    for index, message in enumerate(record["messages"], start=1):
        if not (isinstance(message, dict) and message.get("role") in ROLES and isinstance(message.get("content"), str)):
            raise UserError(f"{where}: message {index}: expected {{\"role\": system|user|assistant, \"content\": text}}")
    if record["messages"][-1]["role"] != "user":
        raise UserError(f"{where}: the last message must be the user's (the one to answer), not {record['messages'][-1]['role']!r}")


def reply_all(model, records: list[dict], settings=None, use_adapter: bool = True,
              cancel: threading.Event | None = None, advance: Callable[[int], None] | None = None) -> list[dict]:  # fmt: skip
    """Each record with "reply" added: the model's answer to its last message, given the ones before."""
    from training.chat.generate import stream_reply

    answered = []
    for number, record in enumerate(records, start=1):
        *history, last = record["messages"]
        text = ""
        for text in stream_reply(model, history, last["content"], settings, use_adapter, cancel):  # noqa: B007
            pass
        if cancel is not None and cancel.is_set():
            raise UserError(f"stopped after {number - 1} of {len(records)} replies; nothing was written")
        answered.append({**record, "reply": text})
        if advance is not None:
            advance(number)
    return answered


def write_replies(records: list[dict], out: str | os.PathLike) -> Path:
    from training.data.persona import (
        write_jsonl,  # atomic: a temp file renamed into place
    )

    return write_jsonl(records, out)
