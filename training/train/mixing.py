"""Several data sets in one run, each drawn at its weight (chats + knowledge + raw text, as seed 003 mixed).

`train_file` has weight 1; each `mix` entry is "PATH=WEIGHT" relative to it, so "knowledge.jsonl=0.5"
draws knowledge rows half as often as chat rows. The draw is datasets.interleave_datasets with those
probabilities and the run's seed, oversampling ("all_exhausted"): the draw goes on until every row of
every set came at least once, a set drawn more often than its size allows repeating, so one epoch
sees all the data in the weights' proportions. A large set at a small weight makes that epoch long
(max_steps bounds a run); past MAX_DRAWS the mix is refused as a likely typo. A mixed set's own held-out rows (X.val.jsonl beside X.jsonl) join the
validation rows, so the leak check and the eval loss cover every source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import UserError

MAX_DRAWS = 5_000_000  # rows one epoch of the mix may draw


@dataclass
class MixEntry:
    path: str
    weight: float


@dataclass
class Source:
    """One data set of the mix, its rows read."""

    path: str
    weight: float
    train: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name


def parse_entry(text: str) -> MixEntry:
    """'knowledge.jsonl=0.5' -> MixEntry; a bare path has weight 1."""
    path, _, weight = text.rpartition("=") if "=" in text else (text, "", "1")
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not path.strip() or not math.isfinite(value) or value <= 0:
        raise UserError(f"mix: {text!r}; expected PATH=WEIGHT with a weight above 0, like knowledge.jsonl=0.5")
    return MixEntry(path.strip(), value)


def mix_problems(entries: list[str]) -> list[str]:
    problems = []
    for entry in entries:
        try:
            parse_entry(entry)
        except UserError as error:
            problems.append(str(error))
    return problems


def epoch_draws(sizes: list[int], weights: list[float]) -> float:
    """Rows one epoch of the mix draws: until every row of every set came once, each set drawn at its
    share of the weights (the set that runs out last decides: size / share)."""
    if len(sizes) == 1:
        return float(sizes[0])
    total = sum(weights)
    return max(size / (weight / total) for size, weight in zip(sizes, weights, strict=True))


def interleave(sources: list[Source], seed: int) -> list[tuple[dict, int]]:
    """(row, source index) in the drawn order: every row at least once, shares = the normalized weights."""
    if len(sources) == 1:
        return [(row, 0) for row in sources[0].train]
    from datasets import Dataset, interleave_datasets

    weights = [source.weight for source in sources]
    probabilities = [weight / sum(weights) for weight in weights]
    draws = epoch_draws([len(source.train) for source in sources], weights)
    if draws > MAX_DRAWS:
        raise UserError(
            f"mix: a weight this small for a set this large would draw {draws:,.0f} rows to "
            "see each row once; raise its weight or use a smaller file"
        )
    # Indices, not rows: the sets' rows differ in shape (text, prompt/completion) and Arrow wants one schema.
    indexed = [
        Dataset.from_dict({"source": [k] * len(s.train), "row": list(range(len(s.train)))})
        for k, s in enumerate(sources)
    ]
    mixed = interleave_datasets(indexed, probabilities=probabilities, seed=seed, stopping_strategy="all_exhausted")
    return [(sources[k].train[i], k) for k, i in zip(mixed["source"], mixed["row"], strict=True)]


def describe(sources: list[Source], drawn: list[tuple[dict, int]], leaks: dict[str, Any]) -> dict[str, Any]:
    """What the run folder's mix.json records: each set, its weight, its rows and the rows drawn from it."""
    weights = sum(source.weight for source in sources)
    counts = [0] * len(sources)
    for _, k in drawn:
        counts[k] += 1
    return {
        "sources": [
            {
                "path": s.path,
                "weight": s.weight,
                "share": round(s.weight / weights, 4),
                "rows": len(s.train),
                "validation_rows": len(s.validation),
                "drawn": counts[k],
            }
            for k, s in enumerate(sources)
        ],
        "examples": len(drawn),
        "leak_check": leaks,
    }
