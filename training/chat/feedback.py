"""A run's feedback file: what its person thought of the replies, one judgement per line.

    RUN/feedback.jsonl   {"id", "time", "prompt": [messages as the model saw them], "reply",
                          "column": "tuned"|"base", "decoding": {settings}, "verdict": "up"|"down"|"rewrite",
                          "rewrite": text or null}

A thumb is an unpaired (KTO) judgement; a rewrite ("say it like me") is a preference pair, chosen =
the rewrite, rejected = the reply (training/report/pairs.py). The words are the person's own and private:
the file stays in the run folder, which no export or push copies (export/save.py copies only named
files from final/).

Appends are one `write` of a whole line on a file opened with O_APPEND, under the run's feedback
lock, so two tabs judging at once never interleave and a crash never leaves half a line that a
reader would take for a judgement; edits and deletes rewrite the file (temp file + rename).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.train.runs import locked

FILE_NAME = "feedback.jsonl"
COLUMNS = ("tuned", "base")
VERDICTS = ("up", "down", "rewrite")
ROLES = ("system", "user", "assistant")


def feedback_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FILE_NAME


def _lock(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / ".feedback.lock"


def record(
    run_dir: str | os.PathLike,
    prompt: list[dict],
    reply: str,
    column: str,
    verdict: str,
    rewrite: str | None = None,
    decoding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one judgement to the run's feedback file and return it (with its new id)."""
    entry = _checked(
        {
            "id": uuid.uuid4().hex[:12],
            "time": round(time.time(), 3),
            "prompt": prompt,
            "reply": reply,
            "column": column,
            "decoding": dict(decoding or {}),
            "verdict": verdict,
            "rewrite": rewrite,
        }
    )
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    folder = Path(run_dir)
    if not folder.is_dir():
        raise UserError(f"feedback: {folder} is not a run folder")
    with locked(_lock(folder)):
        descriptor = os.open(feedback_path(folder), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(descriptor, line)
        finally:
            os.close(descriptor)
    if written != len(line):  # a full disk: say so rather than keep a line a reader would skip
        raise UserError(
            f"feedback: only {written} of {len(line)} bytes written to {feedback_path(folder)}; is the disk full?"
        )
    return entry


def read_feedback(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The judgements in the order they were made; [] when there are none yet.

    A last line without its newline (a write cut by a crash) is not a judgement and is skipped.
    """
    path = feedback_path(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            entries.append(_checked(json.loads(line)))
        except json.JSONDecodeError as error:
            raise UserError(f"{path.name} line {number}: not valid JSON ({error.msg})") from None
        except UserError as error:
            raise UserError(f"{path.name} line {number}: {error}") from None
    return entries


def edit(
    run_dir: str | os.PathLike, entry_id: str, verdict: str | None = None, rewrite: str | None = None
) -> dict[str, Any]:
    """Change a judgement's verdict and/or rewrite; a rewrite given alone makes the verdict "rewrite"."""

    def change(entry: dict) -> dict:
        new_verdict = verdict or ("rewrite" if rewrite is not None else entry["verdict"])
        new_rewrite = (rewrite if rewrite is not None else entry["rewrite"]) if new_verdict == "rewrite" else None
        return _checked({**entry, "verdict": new_verdict, "rewrite": new_rewrite})

    return _rewrite_file(run_dir, entry_id, change)


def delete(run_dir: str | os.PathLike, entry_id: str) -> dict[str, Any]:
    """Remove one judgement for good (the file is rewritten without it); return what was removed."""
    return _rewrite_file(run_dir, entry_id, lambda entry: None)


def _rewrite_file(run_dir: str | os.PathLike, entry_id: str, change) -> dict[str, Any]:
    path = feedback_path(run_dir)
    with locked(_lock(run_dir)):
        entries = read_feedback(run_dir)
        found = next((entry for entry in entries if entry["id"] == entry_id), None)
        if found is None:
            raise UserError(f"feedback: no judgement with id {entry_id!r} in {path}")
        changed = change(found)
        kept = [changed if entry is found else entry for entry in entries if entry is not found or changed is not None]
        temp = path.with_name(f".{FILE_NAME}.tmp")
        temp.write_text("".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in kept), encoding="utf-8")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    return changed if changed is not None else found


def counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    """{"up", "down", "rewrite", "pairs"}: a rewrite of a tuned reply is a pair; thumbs are unpaired."""
    tally = {verdict: sum(entry["verdict"] == verdict for entry in entries) for verdict in VERDICTS}
    return {**tally, "pairs": tally["rewrite"]}


def _checked(entry: Any) -> dict[str, Any]:
    """The entry, or UserError naming the first field that is not what the file format says."""
    if not isinstance(entry, dict):
        raise UserError(f"expected a JSON object, got {type(entry).__name__}")
    prompt = entry.get("prompt")
    if not (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in prompt)
    ):
        raise UserError("prompt: expected a non-empty list of {role: system|user|assistant, content: text}")
    if not isinstance(entry.get("reply"), str):
        raise UserError("reply: expected the generated text")
    if entry.get("column") not in COLUMNS:
        raise UserError(f"column: {entry.get('column')!r}; expected one of {', '.join(COLUMNS)}")
    if entry.get("verdict") not in VERDICTS:
        raise UserError(f"verdict: {entry.get('verdict')!r}; expected one of {', '.join(VERDICTS)}")
    rewrite = entry.get("rewrite")
    if entry["verdict"] == "rewrite" and not (isinstance(rewrite, str) and rewrite.strip()):
        raise UserError("rewrite: empty; type what you would really have answered")
    if entry["verdict"] != "rewrite" and rewrite is not None:
        raise UserError(f"rewrite: only with verdict rewrite, not {entry['verdict']!r}")
    if not isinstance(entry.get("id"), str) or not isinstance(entry.get("decoding"), dict):
        raise UserError("id/decoding: expected an id string and a decoding settings object")
    return {
        key: entry.get(key) for key in ("id", "time", "prompt", "reply", "column", "decoding", "verdict", "rewrite")
    }
