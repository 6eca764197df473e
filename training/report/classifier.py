""" "Is this the person?": a character n-gram classifier of who wrote a message.

Trained on the run's training rows only: the person's replies (the completions) against the other
participants' messages (the user turns of the prompts). Character 1-4-grams keep case and
punctuation, which is where texting habits live; TF-IDF + logistic regression with balanced class
weights, so 0.5 means "no idea" whatever the ratio of the two classes. On real chats it tells one
person from others at AUC 0.82-0.99 per turn (stack-facts).

The mean probability it gives the person's real held-out replies is the ceiling a model can reach;
the tuned and base replies' means say how close each gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_PER_CLASS = 5  # fewer messages than this on either side and the classifier would only be noise


@dataclass
class PersonClassifier:
    pipeline: Any  # sklearn Pipeline: TfidfVectorizer(char_wb 1-4) -> LogisticRegression
    person_messages: int
    other_messages: int

    def probability(self, texts: Sequence[str]) -> np.ndarray:
        """P(the person wrote it) for each text."""
        if not len(texts):
            return np.zeros(0)
        person_column = list(self.pipeline.classes_).index(1)
        return self.pipeline.predict_proba(list(texts))[:, person_column]


def train_classifier(person: Sequence[str], others: Sequence[str], seed: int = 0) -> PersonClassifier | None:
    """A classifier of person (1) vs others (0) from distinct non-empty texts; None with too few of either."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    person, others = _distinct(person), _distinct(others)
    if len(person) < MIN_PER_CLASS or len(others) < MIN_PER_CLASS:
        return None
    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )
    pipeline.fit(person + others, [1] * len(person) + [0] * len(others))
    return PersonClassifier(pipeline, len(person), len(others))


def auc(person_probability: np.ndarray, others_probability: np.ndarray) -> float:
    """How well the scores rank the person's messages above the others' (0.5 = chance, 1 = always)."""
    from sklearn.metrics import roc_auc_score

    if not len(person_probability) or not len(others_probability):
        return float("nan")
    labels = [1] * len(person_probability) + [0] * len(others_probability)
    return float(roc_auc_score(labels, np.concatenate([person_probability, others_probability])))


def _distinct(texts: Sequence[str]) -> list[str]:
    # Chat prompts repeat the same earlier turns in every example of a conversation: count each once.
    return list(dict.fromkeys(text.strip() for text in texts if text.strip()))
