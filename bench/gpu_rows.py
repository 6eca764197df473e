"""The GPU check's rows, and what a user should see from each on a GPU and on a CPU.

A row's expectations are the check's verdict: on a GPU every path trains, chats and exports, the
Unsloth rows through Unsloth when it is installed; on a CPU the bitsandbytes rows are refused with
the message a user reads, the Unsloth row falls back saying why, and 8/4-bit chat is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    name: str
    fields: dict[str, Any]  # RunConfig fields over the check's base config
    chat_load_in: str | None = "auto"  # None: no chat or export (the path is another row's)
    models: tuple[str, ...] = ("small", "large")
    gpu_only: bool = False  # on a CPU it would repeat another row exactly
    hide_unsloth: bool = False


ROWS = (
    Row("lora-peft", {"use_unsloth": "off"}),
    Row("lora-unsloth", {"use_unsloth": "auto"}, chat_load_in="8bit"),
    Row(
        "unsloth-hidden",
        {"use_unsloth": "auto"},
        chat_load_in=None,
        models=("small",),
        gpu_only=True,
        hide_unsloth=True,
    ),
    Row("qlora4", {"method": "qlora", "quantization_bits": 4, "use_unsloth": "off"}, chat_load_in="4bit"),
    Row(
        "qlora4-unsloth",
        {"method": "qlora", "quantization_bits": 4, "use_unsloth": "auto"},
        chat_load_in="4bit",
        models=("large",),
        gpu_only=True,
    ),
    Row("adamw8", {"optimizer": "adamw_8bit", "use_unsloth": "off"}),
)


def expectations(row: Row, cuda: bool, unsloth_installed: bool) -> dict[str, str]:
    """Per step, what a user should see: 'completed', 'backend NAME', 'note TEXT', 'refused TEXT', 'ok'."""
    bitsandbytes = row.fields.get("method") == "qlora" or row.fields.get("optimizer") == "adamw_8bit"
    if not cuda and bitsandbytes:
        what = "method qlora" if row.fields.get("method") == "qlora" else "optimizer adamw_8bit"
        return {"train": f"refused {what}: needs a CUDA GPU with bitsandbytes"}
    expected = {"train": "completed"}
    if row.fields.get("use_unsloth") == "auto":
        uses_unsloth = cuda and unsloth_installed and not row.hide_unsloth
        expected["backend"] = "unsloth" if uses_unsloth else "transformers+peft"
        if not uses_unsloth:
            expected["note"] = "no CUDA GPU" if not cuda else "Unsloth cannot be imported"
    else:
        expected["backend"] = "transformers+peft"
    if row.chat_load_in is not None:
        cpu_refuses = not cuda and row.chat_load_in in ("8bit", "4bit")
        expected["chat"] = "refused 8-bit and 4-bit loading need a CUDA GPU" if cpu_refuses else "ok"
        expected["export"] = "ok"
    return expected


def surprises(result: dict[str, Any], expected: dict[str, str]) -> list[str]:
    """What differs from `expected`, one line each (empty: the row did what a user should see)."""
    found, train = [], result.get("train", {})
    state, reason = train.get("state"), train.get("reason", "")
    outcomes = {
        "train": "completed"
        if state == "completed"
        else f"refused {reason}"
        if state == "refused"
        else f"{state}: {reason}",
        "backend": train.get("backend") or "",
        "note": train.get("backend_note") or "",
        "chat": _outcome(result.get("chat")),
        "export": _outcome(result.get("export")),
    }
    for step, wanted in expected.items():
        seen = outcomes[step]
        if wanted.startswith("refused "):  # the refusal's message, wherever it sits in the line
            matches = seen.startswith("refused ") and wanted.removeprefix("refused ") in seen
        else:
            matches = wanted in seen if step == "note" else seen == wanted
        if not matches:
            found.append(f"{step}: expected {wanted!r}, got {seen!r}")
    return found


def _outcome(step: dict[str, Any] | None) -> str:
    if step is None:
        return "skipped"
    return "ok" if step["state"] == "ok" else f"{step['state']} {step.get('reason', '')}".strip()
