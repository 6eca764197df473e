"""How a reply is picked: DecodingSettings, the named styles (PRESETS) and `preset()`.

No torch here: the CLI's --help and the UI's controls read the styles without loading a model;
training/chat/generate.py turns the settings into `model.generate` arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from training.errors import UserError


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
