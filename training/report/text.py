"""Comparing generated replies with real ones as text: length distributions, content overlap, degeneracy.

- Length: the Wasserstein distance between two sets of reply lengths is how many characters, on
  average, one set must be moved to look like the other; KS is the largest gap between their
  cumulative distributions (0 = same, 1 = disjoint). Both are written for many resamples at once.
- chrF (sacrebleu, character 6-grams, beta 2) of each generated reply against the real reply to the
  same message. It measures content overlap, not voice: on real chats it ranks a verbose base model
  above a tuned one and does not tell two people apart (stack-facts), so it weighs little.
- Degeneracy: a model that loops or says the same thing to everyone. Repetition is, per reply, the
  share of its word 3-grams that already occurred earlier in it; duplicates is the share of replies
  whose text is given, word for word, to another message too; distinct-n is unique word n-grams over
  all n-grams of the whole set (Li et al. 2016).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

import numpy as np


def wasserstein(lengths: np.ndarray, reference: np.ndarray) -> np.ndarray | float:
    """Wasserstein-1 distance between equal-size samples, row by row along the last axis.

    For two samples of the same size it is the mean gap between their sorted values (what
    scipy.stats.wasserstein_distance computes too; the tests check they agree); the closed form lets
    a thousand bootstrap resamples be one numpy call. Every comparison in a report is equal-size.
    """
    lengths, reference = np.asarray(lengths, dtype=float), np.asarray(reference, dtype=float)
    if lengths.shape != reference.shape:
        raise ValueError(f"wasserstein: samples of shapes {lengths.shape} and {reference.shape}; expected equal")
    if not lengths.shape[-1]:
        return np.full(lengths.shape[:-1], np.nan) if lengths.ndim > 1 else float("nan")
    found = np.abs(np.sort(lengths, axis=-1) - np.sort(reference, axis=-1)).mean(axis=-1)
    return float(found) if np.ndim(found) == 0 else found


def ks(lengths: np.ndarray, reference: np.ndarray) -> np.ndarray | float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the empirical CDFs), row by row."""
    lengths, reference = np.atleast_2d(lengths).astype(float), np.atleast_2d(reference).astype(float)
    if not lengths.shape[-1] or not reference.shape[-1]:
        return float("nan")
    found = np.empty(len(lengths))
    for row, (sample, other) in enumerate(zip(np.sort(lengths, axis=-1), np.sort(reference, axis=-1))):
        points = np.concatenate([sample, other])  # the CDFs only step at observed values
        gap = np.searchsorted(sample, points, side="right") / len(sample)
        found[row] = np.abs(gap - np.searchsorted(other, points, side="right") / len(other)).max()
    return float(found[0]) if len(found) == 1 else found


@functools.cache
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()  # sacrebleu's defaults: character 6-grams, no word n-grams, beta 2


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence-level chrF (0-100) of each hypothesis against the reference at the same index."""
    if len(hypotheses) != len(references):
        raise ValueError(f"chrf: {len(hypotheses)} hypotheses for {len(references)} references")
    return np.array([_chrf().sentence_score(h, [r]).score for h, r in zip(hypotheses, references)], dtype=float)


def words(text: str) -> list[str]:
    return text.lower().split()


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repetition(text: str, n: int = 3) -> float:
    """Share of the reply's word n-grams that repeat an earlier one in the same reply (0 = no loop)."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def duplicated(texts: Sequence[str]) -> np.ndarray:
    """1.0 for each reply whose (non-empty, case-folded) text is also given to another message."""
    keys = [" ".join(words(text)) for text in texts]
    counts = Counter(keys)
    return np.array([float(bool(key) and counts[key] > 1) for key in keys], dtype=float)


def distinct(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over the set; NaN when the set has none."""
    grams = [gram for text in texts for gram in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else float("nan")
