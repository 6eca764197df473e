"""Scoring real, tuned and base replies to the same held-out messages: numbers only, no text out.

Every metric is a dict of the same shape, so the CLI, the app and the model card show them alike:

    {"key", "label", "unit", "goal", "real", "tuned", "base", "floor",
     "ci": {"real": [lo, hi], "tuned": [...], "base": [...], "difference": [...]}}

`goal` says which way is better: "lower" (a distance to the real replies), "higher" (the classifier's
P(person), content overlap), or "match" (a habit whose rate should be the person's own rate). The
"difference" interval is a paired bootstrap of tuned minus base (for "match": |tuned - real| minus
|base - real|), so an interval that excludes 0 is a change that chance alone rarely makes.
`floor` is the same number between two random halves of the person's real replies (stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.report import stats, style, text
from training.report.classifier import PersonClassifier, auc

SOURCES = ("real", "tuned", "base")


@dataclass
class Replies:
    """The person's real replies and the two models' replies to the same messages, index for index."""

    real: list[str]
    tuned: list[str]
    base: list[str]

    def __post_init__(self) -> None:
        if not len(self.real) == len(self.tuned) == len(self.base):
            raise ValueError(f"replies: {len(self.real)} real, {len(self.tuned)} tuned, {len(self.base)} base")

    def __len__(self) -> int:
        return len(self.real)

    def by_source(self) -> dict[str, list[str]]:
        return {"real": self.real, "tuned": self.tuned, "base": self.base}


Values = tuple[np.ndarray, np.ndarray, np.ndarray]


def measure(
    key: str,
    label: str,
    goal: str,
    values: Callable[[np.ndarray], Values],
    floor: float | None,
    count: int,
    seed: int,
    unit: str = "",
) -> dict:
    """One metric: `values(indices)` gives (real, tuned, base) for each resample, one per row of
    `indices` (NaN where not defined; a distance has no "real" value)."""

    def statistic(indices: np.ndarray) -> np.ndarray:
        real, tuned, base = (np.broadcast_to(np.asarray(v, dtype=float), (len(indices),)) for v in values(indices))
        return np.stack([real, tuned, base, advantage(goal, real, tuned, base)])

    point = stats.point(statistic, count)
    low, high = stats.bootstrap_ci(statistic, count, seed)
    names = (*SOURCES, "difference")
    return {
        "key": key,
        "label": label,
        "unit": unit,
        "goal": goal,
        **{name: _number(point[i]) for i, name in enumerate(SOURCES)},
        "floor": _number(floor),
        "ci": {name: [_number(low[i]), _number(high[i])] for i, name in enumerate(names)},
    }


def advantage(goal: str, real, tuned, base):
    """Tuned minus base on the metric's own scale: below 0 is better for lower/match, above 0 for higher."""
    if goal == "match":
        return np.abs(tuned - real) - np.abs(base - real)
    return tuned - base


def verdict(metric: dict) -> str:
    """ "tuned" / "base" when the difference interval excludes 0 in that one's favour, else "unclear"."""
    low, high = metric["ci"]["difference"]
    if low is None or high is None:
        return "unclear"
    if metric["goal"] == "higher":
        return "tuned" if low > 0 else "base" if high < 0 else "unclear"
    return "tuned" if high < 0 else "base" if low > 0 else "unclear"


# ---- style: habits, bubbles, length ---------------------------------------------------------------


def style_metrics(replies: Replies, separator: str, seed: int) -> list[dict]:
    """Each habit's rate, the summed style distance, bubbles per turn and reply-length distances."""
    features = {name: style.feature_matrix(texts, separator) for name, texts in replies.by_source().items()}
    half_a, half_b = stats.halves(len(replies), seed)
    real_a, real_b = features["real"][half_a], features["real"][half_b]
    count = len(replies)
    found = []
    for habit in style.RATES:

        def rate(indices, habit=habit):
            return tuple(stats.mean(style.column(features[source][indices], habit)) for source in SOURCES)

        floor = abs(stats.mean(style.column(real_a, habit)) - stats.mean(style.column(real_b, habit)))
        found.append(measure(f"rate_{habit}", style.LABELS[habit], "match", rate, floor, count, seed, "share"))

    def distance(indices):
        real = features["real"][indices]
        return (
            np.nan,
            style.style_distance(features["tuned"][indices], real),
            style.style_distance(features["base"][indices], real),
        )

    found.append(
        measure(
            "style_distance",
            "style distance (sum of habit-rate differences)",
            "lower",
            distance,
            style.style_distance(real_a, real_b),
            count,
            seed,
        )
    )

    def bubbles(indices):
        return tuple(stats.mean(style.column(features[source][indices], "bubbles")) for source in SOURCES)

    floor = abs(stats.mean(style.column(real_a, "bubbles")) - stats.mean(style.column(real_b, "bubbles")))
    found.append(measure("bubbles", "bubbles per turn", "match", bubbles, floor, count, seed, "messages"))
    lengths = {source: style.column(matrix, "length") for source, matrix in features.items()}
    for kind, distance_of, label, unit in (
        ("wasserstein", text.wasserstein, "reply length distance (Wasserstein)", "characters"),
        ("ks", text.ks, "reply length distance (Kolmogorov-Smirnov)", ""),
    ):

        def length_distance(indices, distance_of=distance_of):
            real = lengths["real"][indices]
            return (np.nan, distance_of(lengths["tuned"][indices], real), distance_of(lengths["base"][indices], real))

        floor = distance_of(style.column(real_a, "length"), style.column(real_b, "length"))
        found.append(measure(f"length_{kind}", label, "lower", length_distance, floor, count, seed, unit))
    return found


def reply_lengths(replies: Replies) -> dict[str, list[int]]:
    """Characters per reply for each source: what the length plot draws (numbers, never text)."""
    return {source: [len(t.strip()) for t in texts] for source, texts in replies.by_source().items()}


def habit_rates(metrics: list[dict]) -> dict[str, dict[str, float | None]]:
    """{habit label: {real, tuned, base}}: what the habits bar chart draws."""
    return {m["label"]: {s: m[s] for s in SOURCES} for m in metrics if m["key"].startswith("rate_")}


# ---- "is this the person?" ------------------------------------------------------------------------


def classifier_metrics(replies: Replies, classifier: PersonClassifier, others: list[str], seed: int) -> list[dict]:
    """Mean P(person) per source, and the classifier's AUC on the real held-out replies vs others' turns."""
    probability = {source: classifier.probability(texts) for source, texts in replies.by_source().items()}
    half_a, half_b = stats.halves(len(replies), seed)
    floor = abs(float(probability["real"][half_a].mean()) - float(probability["real"][half_b].mean()))

    def mean_probability(indices):
        return tuple(probability[source][indices].mean(axis=-1) for source in SOURCES)

    found = [
        measure(
            "p_person",
            "P(person) from the character n-gram classifier",
            "higher",
            mean_probability,
            floor,
            len(replies),
            seed,
            "probability",
        )
    ]
    found[0]["auc"] = _number(auc(probability["real"], classifier.probability(others)))
    found[0]["trained_on"] = {"person": classifier.person_messages, "others": classifier.other_messages}
    return found


# ---- content overlap and degeneracy ---------------------------------------------------------------


def content_metrics(replies: Replies, seed: int) -> list[dict]:
    """chrF against the real reply; the floor is chrF between two real replies to different messages."""
    scores = {source: text.chrf(replies.by_source()[source], replies.real) for source in ("tuned", "base")}
    half_a, half_b = stats.halves(len(replies), seed)
    floor = (
        float(text.chrf([replies.real[i] for i in half_a], [replies.real[i] for i in half_b]).mean())
        if len(half_a)
        else None
    )

    def overlap(indices):
        return (np.nan, scores["tuned"][indices].mean(axis=-1), scores["base"][indices].mean(axis=-1))

    return [
        measure(
            "chrf",
            "chrF against your real reply (content overlap, low weight)",
            "higher",
            overlap,
            floor,
            len(replies),
            seed,
            "0-100",
        )
    ]


def degeneracy_metrics(replies: Replies, seed: int) -> list[dict]:
    """Looping within a reply, the same reply to different messages, and distinct-1/2 of each set."""
    sources = replies.by_source()
    half_a, half_b = stats.halves(len(replies), seed)
    found = []
    for key, label, per_reply in (
        (
            "repetition",
            "repetition within a reply (repeated word 3-grams)",
            {s: np.array([text.repetition(t) for t in texts]) for s, texts in sources.items()},
        ),
        (
            "duplicates",
            "replies given word for word to another message too",
            {s: text.duplicated(texts) for s, texts in sources.items()},
        ),
    ):
        floor = (
            abs(float(per_reply["real"][half_a].mean()) - float(per_reply["real"][half_b].mean()))
            if len(half_a)
            else None
        )

        def share(indices, per_reply=per_reply):
            return tuple(per_reply[source][indices].mean(axis=-1) for source in SOURCES)

        found.append(measure(key, label, "match", share, floor, len(replies), seed, "share"))
    for n in (1, 2):
        halves_values = [text.distinct([replies.real[i] for i in half], n) for half in (half_a, half_b)]
        found.append(
            {
                "key": f"distinct_{n}",
                "label": f"distinct-{n} (unique word {n}-grams over all)",
                "unit": "share",
                "goal": "match",
                **{s: _number(text.distinct(texts, n)) for s, texts in sources.items()},
                "floor": _number(abs(halves_values[0] - halves_values[1])),
                # No bootstrap: a resample repeats replies, which would make any set look less diverse.
                "ci": {name: [None, None] for name in (*SOURCES, "difference")},
            }
        )
    return found


def empty_replies(replies: Replies) -> dict[str, int]:
    return {source: sum(not t.strip() for t in texts) for source, texts in replies.by_source().items()}


def _number(value) -> float | None:
    """JSON-safe: NaN (undefined) becomes None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# ---- held-out loss: the person vs the control --------------------------------------------------


@dataclass
class RowLosses:
    """Summed negative log-likelihood (nats) of each row's reply tokens, and how many tokens that is
    (0 = the row was not scored: no control turn, or nothing left after max_length)."""

    nll: np.ndarray
    tokens: np.ndarray

    def loss(self, indices: np.ndarray) -> np.ndarray | float:
        """Nats per token over the rows at `indices` (along the last axis); NaN where no token."""
        tokens = self.tokens[indices].sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            found = np.where(tokens > 0, self.nll[indices].sum(axis=-1) / np.maximum(tokens, 1), np.nan)
        return float(found) if np.ndim(found) == 0 else found


def loss_metrics(person: dict[str, RowLosses], control: dict[str, RowLosses], seed: int) -> dict:
    """Per-token loss of the person's replies and of the control turns, under base and tuned.

    drop = base loss - tuned loss (nats per token; exp(drop) is how many times less perplexed the
    tuned model is). gap = drop on the person - drop on the others: what was learned about this
    person rather than about texting in general. Losses average over tokens, pooled over rows.
    """
    count = len(person["tuned"].nll)

    def statistic(indices: np.ndarray) -> np.ndarray:
        values = []
        for group in (person, control):
            base, tuned = group["base"].loss(indices), group["tuned"].loss(indices)
            values += [base, tuned, tuned - base]
        return np.stack([*values, (values[0] - values[1]) - (values[3] - values[4])])

    point = stats.point(statistic, count)
    low, high = stats.bootstrap_ci(statistic, count, seed)
    half_a, half_b = stats.halves(count, seed)
    drops = [person["base"].loss(half) - person["tuned"].loss(half) for half in (half_a, half_b)]

    def group(offset: int) -> dict:
        names = ("base", "tuned", "difference")
        return {
            "base": _number(point[offset]),
            "tuned": _number(point[offset + 1]),
            "ci": {name: [_number(low[offset + i]), _number(high[offset + i])] for i, name in enumerate(names)},
        }

    return {
        "person": group(0),
        "others": group(3),
        "gap": {
            "value": _number(point[6]),
            "ci": [_number(low[6]), _number(high[6])],
            "floor": _number(abs(drops[0] - drops[1])),
        },
        "rows": count,
        "control_rows": int((control["tuned"].tokens > 0).sum()),
        "tokens": {"person": int(person["tuned"].tokens.sum()), "others": int(control["tuned"].tokens.sum())},
    }
