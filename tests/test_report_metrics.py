"""The persona report's metrics, each checked against values worked out by hand on a small fixture."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.report import stats, style, text
from training.report.classifier import auc, train_classifier
from training.report.metrics import (
    Replies,
    RowLosses,
    classifier_metrics,
    content_metrics,
    degeneracy_metrics,
    loss_metrics,
    measure,
    style_metrics,
    verdict,
)

# Hand-worked fixture: four messages, the person's real replies and two models' replies to them.
REAL = ["lol ok", "dont worry about it.", "Sure! 😂", "haha yes\nsee you at 7"]
TUNED = ["lol sure", "im not sure.", "ok", "haha yeah\nwhat time"]
BASE = [
    "I would be happy to help you with that.",
    "Is there anything else?",
    "Of course.",
    "Hello! How can I assist you today?",
]
REPLIES = Replies(REAL, TUNED, BASE)
# Rates by hand (share of the four replies): real, tuned, base.
RATES = {
    "lowercase_start": (3 / 4, 1.0, 0.0),
    "final_period": (1 / 4, 1 / 4, 2 / 4),
    "question": (0.0, 0.0, 2 / 4),
    "exclamation": (1 / 4, 0.0, 1 / 4),
    "emoji": (1 / 4, 0.0, 0.0),
    "laughter": (2 / 4, 2 / 4, 0.0),
    "dropped_apostrophe": (1 / 4, 1 / 4, 0.0),
}


def by_key(metrics: list[dict]) -> dict[str, dict]:
    return {metric["key"]: metric for metric in metrics}


def test_reply_features_by_hand():
    assert style.reply_features("haha yes\nsee you at 7") == {
        "lowercase_start": 1.0,
        "final_period": 0.0,
        "question": 0.0,
        "exclamation": 0.0,
        "emoji": 0.0,
        "laughter": 1.0,
        "dropped_apostrophe": 0.0,
        "bubbles": 2.0,
        "length": 21.0,
    }
    sure = style.reply_features("Sure! 😂")
    assert (sure["lowercase_start"], sure["exclamation"], sure["emoji"], sure["length"]) == (0.0, 1.0, 1.0, 7.0)
    assert math.isnan(style.reply_features("😂👍🏽")["lowercase_start"])  # no letter: does not count either way
    assert style.reply_features("wait...")["final_period"] == 0.0  # an ellipsis is not a final period
    assert style.reply_features("a | b|c", separator="|")["bubbles"] == 3.0


@pytest.mark.parametrize(
    "reply, laughs",
    [("LOL", 1), ("lmaooo", 1), ("hahahaha no", 1), ("hehe", 1), ("Lola is here", 0), ("aha", 0), ("ha", 0)],
)
def test_laughter_is_a_word_not_a_substring(reply, laughs):
    assert style.reply_features(reply)["laughter"] == laughs


@pytest.mark.parametrize(
    "reply, dropped",
    [
        ("im late", 1),
        ("Dont.", 1),
        ("thats it", 1),
        ("I'm late", 0),
        ("its fine", 0),
        ("well ill see", 0),
        ("imagine", 0),
    ],
)
def test_dropped_apostrophes_only_count_unambiguous_contractions(reply, dropped):
    assert style.reply_features(reply)["dropped_apostrophe"] == dropped


def test_habit_rates_and_style_distance_by_hand():
    metrics = by_key(style_metrics(REPLIES, "\n", seed=0))
    for habit, (real, tuned, base) in RATES.items():
        metric = metrics[f"rate_{habit}"]
        assert (metric["real"], metric["tuned"], metric["base"]) == pytest.approx((real, tuned, base)), habit
    # tuned: |1-.75| + |0-.25| (!) + |0-.25| (emoji) = .75; base: .75+.25+.5+0+.25+.5+.25 = 2.5
    assert metrics["style_distance"]["tuned"] == pytest.approx(0.75)
    assert metrics["style_distance"]["base"] == pytest.approx(2.5)
    assert metrics["style_distance"]["real"] is None
    assert (metrics["bubbles"]["real"], metrics["bubbles"]["tuned"], metrics["bubbles"]["base"]) == (1.25, 1.25, 1.0)


def test_length_distances_by_hand():
    # Lengths: real 6, 20, 7, 21; tuned 8, 12, 2, 19; base 39, 23, 10, 34 characters.
    metrics = by_key(style_metrics(REPLIES, "\n", seed=0))
    # Equal-size samples: Wasserstein is the mean gap between sorted values: (4+1+8+2)/4 and (4+16+14+18)/4.
    assert metrics["length_wasserstein"]["tuned"] == pytest.approx(3.75)
    assert metrics["length_wasserstein"]["base"] == pytest.approx(13.0)
    # KS: largest gap between the step functions, after 19 (tuned 4/4, real 2/4) and after 21 (base 1/4, real 4/4).
    assert metrics["length_ks"]["tuned"] == pytest.approx(0.5)
    assert metrics["length_ks"]["base"] == pytest.approx(0.75)


def test_length_distances_agree_with_scipy_for_every_resample_at_once():
    from scipy.stats import ks_2samp, wasserstein_distance

    rng = np.random.default_rng(0)
    samples, reference = rng.integers(1, 80, size=(50, 30)), rng.integers(1, 120, size=(50, 30))
    expected_w = [wasserstein_distance(a, b) for a, b in zip(samples, reference)]
    expected_ks = [ks_2samp(a, b).statistic for a, b in zip(samples, reference)]
    assert text.wasserstein(samples, reference) == pytest.approx(expected_w)
    assert text.ks(samples, reference) == pytest.approx(expected_ks)  # ties included: lengths repeat
    assert text.wasserstein(samples[0], reference[0]) == pytest.approx(expected_w[0])


def test_noise_floor_is_the_metric_between_two_halves_of_the_real_replies():
    half_a, half_b = stats.halves(4, seed=0)
    assert len(half_a) == len(half_b) == 2 and not set(half_a) & set(half_b)
    a, b = [REAL[i] for i in half_a], [REAL[i] for i in half_b]
    metrics = by_key(style_metrics(REPLIES, "\n", seed=0))
    for habit in RATES:
        expected = abs(
            np.mean([style.reply_features(t)[habit] for t in a]) - np.mean([style.reply_features(t)[habit] for t in b])
        )
        assert metrics[f"rate_{habit}"]["floor"] == pytest.approx(expected), habit
    lengths = [sorted(len(t) for t in half) for half in (a, b)]
    assert metrics["length_wasserstein"]["floor"] == pytest.approx(np.mean(np.abs(np.subtract(*lengths))))


def test_halves_are_disjoint_fixed_by_the_seed_and_leave_the_odd_one_out():
    first, second = stats.halves(7, seed=3)
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    assert all((x == y).all() for x, y in zip(stats.halves(7, seed=3), (first, second)))
    assert any((x != y).any() for x, y in zip(stats.halves(7, seed=4), (first, second)))


def test_bootstrap_interval_matches_the_normal_theory_interval():
    coin = np.array([0.0, 1.0] * 200)  # p = 0.5, n = 400: the 95% interval is 0.5 +- 1.96 * 0.025
    (low,), (high,) = stats.bootstrap_ci(lambda i: np.array([coin[i].mean(axis=-1)]), len(coin), seed=0)
    assert low == pytest.approx(0.5 - 0.049, abs=0.01) and high == pytest.approx(0.5 + 0.049, abs=0.01)
    constant = np.full(10, 3.0)
    assert stats.bootstrap_ci(lambda i: np.array([constant[i].mean(axis=-1)]), 10, seed=0) == ([3.0], [3.0])
    (low,), (high,) = stats.bootstrap_ci(lambda i: np.array([coin[:2][i].mean(axis=-1)]), 2, seed=0)
    assert (low, high) == (0.0, 1.0)  # two values: the resampled means are 0, .5, 1 with 1/4, 1/2, 1/4


def test_measure_gives_a_paired_difference_interval_and_a_verdict():
    better = np.arange(40, dtype=float)
    metric = measure(
        "m",
        "m",
        "lower",
        lambda i: (math.nan, better[i].mean(axis=-1), better[i].mean(axis=-1) + 5),
        floor=1.0,
        count=40,
        seed=0,
    )
    assert metric["tuned"] == pytest.approx(19.5) and metric["base"] == pytest.approx(24.5)
    assert metric["ci"]["difference"] == pytest.approx([-5.0, -5.0])  # paired: the same rows every time
    assert verdict(metric) == "tuned"
    assert verdict({**metric, "goal": "higher"}) == "base"
    noise = np.random.default_rng(1).normal(size=(2, 40))  # two models equally good, up to chance
    unclear = measure(
        "m", "m", "lower", lambda i: (math.nan, noise[0, i].mean(axis=-1), noise[1, i].mean(axis=-1)), None, 40, 0
    )
    low, high = unclear["ci"]["difference"]
    assert unclear["floor"] is None and low < 0 < high and verdict(unclear) == "unclear"


def test_chrf_matches_the_formula_by_hand():
    # "ab" vs "abc": 1-grams P 2/2 R 2/3, 2-grams P 1/1 R 1/2, longer orders have no hypothesis n-gram.
    # chrF2 over the 2 effective orders: P = 1, R = 7/12, F = 5PR / (4P + R) = 35/55.
    assert text.chrf(["ab"], ["abc"])[0] == pytest.approx(100 * 35 / 55)
    assert list(text.chrf(["same words", ""], ["same words", "x"])) == [100.0, 0.0]
    metric = content_metrics(Replies(["lol ok", "sure thing"], ["lol ok", "nope"], ["xyz", "sure thing"]), seed=0)[0]
    assert metric["tuned"] == pytest.approx((100 + text.chrf(["nope"], ["sure thing"])[0]) / 2)
    assert metric["base"] == pytest.approx((text.chrf(["xyz"], ["lol ok"])[0] + 100) / 2)


def test_degeneracy_by_hand():
    assert text.repetition("lol lol lol lol") == pytest.approx(0.5)  # 3-grams: lol×3 twice -> 1 - 1/2
    assert text.repetition("a b c a b c") == pytest.approx(0.25)  # abc bca cab abc -> 1 - 3/4
    assert text.repetition("hi there") == 0.0
    assert list(text.duplicated(["ok", "OK", "sure", ""])) == [1.0, 1.0, 0.0, 0.0]
    assert text.distinct(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    assert text.distinct(["a b a b", "a b"], 2) == pytest.approx(2 / 4)  # ab ba ab | ab
    replies = Replies(
        ["hey you", "sure", "nah", "ok then"], ["lol", "lol", "lol lol lol lol", "ok"], ["a", "b", "c", "d"]
    )
    metrics = by_key(degeneracy_metrics(replies, seed=0))
    assert metrics["duplicates"]["tuned"] == pytest.approx(2 / 4) and metrics["duplicates"]["real"] == 0.0
    assert metrics["repetition"]["tuned"] == pytest.approx(0.5 / 4)
    assert metrics["distinct_1"]["tuned"] == pytest.approx(2 / 7)  # lol×6 and ok: 2 unique of 7 words
    assert metrics["distinct_1"]["ci"]["tuned"] == [None, None]


def test_auc_by_hand():
    assert auc(np.array([0.9, 0.4]), np.array([0.5, 0.1])) == pytest.approx(3 / 4)  # 3 of 4 pairs ranked right


def test_classifier_tells_the_persons_texting_from_the_others():
    person = ["lol ok", "haha yeah", "omw lol", "dont care lol", "sure haha", "ya lol", "lmao no", "k haha"]
    others = [
        "Good morning, how are you?",
        "Please send me the file.",
        "Thank you very much.",
        "Could we meet on Tuesday?",
        "I will call you later.",
        "That sounds great.",
    ]
    classifier = train_classifier(person + person[:2], others)  # duplicates count once
    assert classifier.person_messages == len(person) and classifier.other_messages == len(others)
    replies = Replies(["lol yeah", "haha ok"], ["ok lol", "lol"], ["Thank you, I will.", "Good evening."])
    metric = classifier_metrics(replies, classifier, ["Please call me.", "How are you?"], seed=0)[0]
    assert metric["tuned"] == pytest.approx(classifier.probability(replies.tuned).mean())
    assert metric["real"] > 0.5 > metric["base"] and metric["tuned"] > 0.5
    assert metric["auc"] == 1.0
    assert train_classifier(person[:4], others) is None  # too few of the person's messages to learn from


def test_held_out_loss_gap_by_hand():
    # Person: base 10 nats over 4 tokens = 2.5, tuned 6/4 = 1.5, drop 1.0.
    # Control (only row 0 has one): base 3/1, tuned 2.5/1, drop 0.5. Gap = 1.0 - 0.5.
    person = {
        "base": RowLosses(np.array([4.0, 6.0]), np.array([2, 2])),
        "tuned": RowLosses(np.array([2.0, 4.0]), np.array([2, 2])),
    }
    control = {
        "base": RowLosses(np.array([3.0, 0.0]), np.array([1, 0])),
        "tuned": RowLosses(np.array([2.5, 0.0]), np.array([1, 0])),
    }
    report = loss_metrics(person, control, seed=0)
    assert (report["person"]["base"], report["person"]["tuned"]) == (2.5, 1.5)
    assert (report["others"]["base"], report["others"]["tuned"]) == (3.0, 2.5)
    assert report["gap"]["value"] == pytest.approx(0.5)
    assert report["gap"]["floor"] == pytest.approx(0.0)  # both rows drop by (4-2)/2 = (6-4)/2 = 1
    assert report["rows"] == 2 and report["control_rows"] == 1
    assert report["tokens"] == {"person": 4, "others": 1}
