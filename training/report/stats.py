"""How sure a number is: bootstrap intervals and the noise floor of the person's own replies.

Every statistic is a function of a set of held-out rows (by index), so one resample of the indices
moves the real, tuned and base replies of the same rows together (a paired bootstrap). Statistics
take a 2-D array of indices, one resample per row, and answer for all resamples at once: a report's
thousands of resamples then cost numpy time, not Python loops.

The noise floor of a distance is that distance between two disjoint random halves of the person's
real replies: what "no difference at all" looks like at this sample size. A model whose distance to
the real replies is below the floor is as close as the person is to themselves. The halves hold
half the replies, so the floor errs on the large side.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def point(statistic: Callable[[np.ndarray], np.ndarray], count: int) -> np.ndarray:
    """The statistic on all the rows (one "resample" holding every row once)."""
    return np.asarray(statistic(np.arange(count)[None, :]), dtype=float)[:, 0]


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray], count: int, seed: int, resamples: int = RESAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile intervals (low, high) of each value the statistic returns, over `resamples`
    resamples of range(count) with replacement.

    `statistic(indices)` gets indices of shape (resamples, count) and returns shape (values, resamples).
    NaN where there are fewer than two rows or a value is undefined on the resampled rows.
    """
    from scipy.stats import bootstrap

    if count < 2:
        nan = np.full(len(point(statistic, count)) if count else 1, math.nan)
        return nan, nan
    with warnings.catch_warnings():  # scipy warns when every resample gives the same value; that is an answer
        warnings.simplefilter("ignore")
        result = bootstrap(
            (np.arange(count),),
            lambda indices, axis=-1: statistic(np.asarray(indices, dtype=int)),
            vectorized=True,
            n_resamples=resamples,
            confidence_level=LEVEL,
            method="percentile",
            rng=seed,
        )
    low, high = result.confidence_interval
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def halves(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of range(count) (the odd one out is left out), fixed by the seed."""
    order = np.random.default_rng(seed).permutation(count)
    half = count // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])


def mean(values: np.ndarray) -> np.ndarray | float:
    """Mean of the defined values along the last axis; NaN where none (a rate nobody's reply applies to)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": NaN is the answer
        found = np.nanmean(values, axis=-1)
    return float(found) if np.ndim(found) == 0 else found
