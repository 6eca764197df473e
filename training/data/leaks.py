"""Validation rows that the training data already holds: the leak seed 003's author found too late.

The author had pasted the validation Q&A into one of the raw text files; the eval loss looked near
perfect and meant nothing. Before a run starts, every validation row is checked against every
training row of every mixed data set:

  exact  the row's scored text (the question it answers + its reply, or its text), lowercased and
         reduced to words, equals a training row's
  near   for the question and for the reply alike, at least CONTAINMENT of its word 8-grams occur
         somewhere in the training rows (seed 003's pasted Q&A: all of them, whatever the pasted
         format; a held-out answer that quotes a document, asked in words of its own: not the question)

A part under 8 words has no 8-grams: it must appear word for word in a training row that holds
some of the row's 8-grams (seed 003's paste again; a short question of its own, answered by a
quote of a document, is no leak), and a row whose parts are all that short is checked for exact
duplicates only. Hand-written (a set of
the validation rows' n-grams, one pass over the training rows): MinHash libraries estimate Jaccard
similarity between whole rows, but a pasted Q&A is a small part of a long document, which is
containment, not similarity. bench/bench_knowledge.py measures it on 100,000 rows.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from training.errors import UserError

NGRAM = 8
CONTAINMENT = 0.5
_WORD = re.compile(r"\w+")


@dataclass
class Leak:
    validation_index: int
    validation_source: str
    training_source: str  # the file (and the document inside it) holding the leaked text
    share: float  # of the row's n-grams found in training; 1.0 for exact duplicates


@dataclass
class LeakReport:
    checked: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def leaked_indices(self) -> set[int]:
        return {leak.validation_index for leak in self.leaks}

    def where(self) -> str:
        """'3 in notes.jsonl (wiki/faq.md), 1 in chats.jsonl', most first."""
        counts = Counter(leak.training_source for leak in self.leaks)
        return ", ".join(f"{count} in {source}" for source, count in counts.most_common())

    def message(self) -> str:
        return (
            f"leak check: {len(self.leaks)} of {self.checked} validation rows also appear in the training data "
            f"({self.where()}); eval loss on them would look better than the model is. Remove that text from "
            "the training files, or set leaks: drop to evaluate without those rows"
        )

    def as_dict(self) -> dict[str, Any]:
        counts = Counter(leak.training_source for leak in self.leaks)
        return {"validation_rows": self.checked, "leaked": len(self.leaks), "found_in": dict(counts.most_common())}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def scored_parts(row: dict) -> list[str]:
    """What a validation row measures: the last user turn of its prompt and its reply, or its text."""
    if "text" in row:
        return [row["text"]]
    asked = [m["content"] for m in row["prompt"] if m["role"] == "user"][-1:]
    return asked + ["\n".join(m["content"] for m in row["completion"])]


def _exact_key(row: dict) -> str:
    return " ".join(words("\n".join(scored_parts(row))))


def full_text(row: dict) -> str:
    """Everything a training row shows the model."""
    if "text" in row:
        return row["text"]
    return "\n".join(m["content"] for m in (*row["prompt"], *row["completion"]))


def source_of(row: dict, data_file: str) -> str:
    """The data set file, with the document it came from when the row says (knowledge rows, raw text chunks)."""
    document = row.get("source") if isinstance(row.get("source"), str) else None
    if document is None and "text" in row and row["text"].startswith("File: "):
        document = row["text"][6 : row["text"].find("\n")] if "\n" in row["text"] else row["text"][6:]
    return f"{data_file} ({document})" if document else data_file


def _grams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return set(zip(*(tokens[offset:] for offset in range(n)), strict=False))


@dataclass
class _Wanted:
    """The validation side, indexed: what the pass over the training rows looks for."""

    exact: dict[str, list[int]] = field(default_factory=dict)  # exact key -> rows
    grams: list[list[set]] = field(default_factory=list)  # per row, the n-grams of each part of n+ words
    short: dict[int, list[str]] = field(default_factory=dict)  # row -> its parts under n words, " a b c "
    pending: set = field(default_factory=set)  # n-grams not found yet
    owners: dict[tuple, list[int]] = field(default_factory=dict)  # n-gram -> rows with short parts holding it
    owned: set = field(default_factory=set)  # the owners' n-grams as a set: intersecting a dict copies it first


def _index(validation: list[tuple[dict, str]], n: int) -> _Wanted:
    wanted = _Wanted()
    for index, (row, _) in enumerate(validation):
        wanted.exact.setdefault(_exact_key(row), []).append(index)
        tokens = [words(part) for part in scored_parts(row)]
        wanted.grams.append([_grams(part, n) for part in tokens if len(part) >= n])
        short = [f" {' '.join(part)} " for part in tokens if 0 < len(part) < n]
        for grams in wanted.grams[-1]:
            wanted.pending |= grams
            for gram in grams if short else ():
                wanted.owners.setdefault(gram, []).append(index)
        if short and wanted.grams[-1]:
            wanted.short[index] = short
    wanted.owned = set(wanted.owners)
    return wanted


def find_leaks(
    train: list[tuple[dict, str]], validation: list[tuple[dict, str]], n: int = NGRAM, containment: float = CONTAINMENT
) -> LeakReport:
    """Which validation rows the training rows hold; rows come as (row, data file name).

    A part under n words (a short question) counts as found when a training row holding some of the
    row's n-grams holds it too, word for word: a pasted Q&A does, a document quoted in an answer
    to a question of other words does not.
    """
    wanted = _index(validation, n)
    found: dict[tuple, str] = {}  # validation n-gram -> the first training source holding it
    duplicates: dict[int, str] = {}
    short_found: dict[int, dict[str, str]] = {}  # row -> its short parts found -> where (the paste's file)
    for row, data_file in train:
        for index in wanted.exact.get(_exact_key(row), ()):
            duplicates.setdefault(index, source_of(row, data_file))
        tokens = words(full_text(row))
        grams = _grams(tokens, n)
        hits = wanted.pending.intersection(grams)
        if hits:
            source = source_of(row, data_file)
            for gram in hits:
                found.setdefault(gram, source)
            wanted.pending -= hits  # found once is enough: later rows need not find it again
        owners = {index for gram in grams.intersection(wanted.owned) for index in wanted.owners[gram]}
        if owners:
            text, source = f" {' '.join(tokens)} ", source_of(row, data_file)
            for index in owners:
                for part in wanted.short[index]:
                    if part in text:
                        short_found.setdefault(index, {}).setdefault(part, source)
    report = LeakReport(checked=len(validation))
    for index, parts in enumerate(wanted.grams):
        if index in duplicates:
            report.leaks.append(Leak(index, validation[index][1], duplicates[index], 1.0))
            continue
        short = short_found.get(index, {})
        if not parts or not set(wanted.short.get(index, [])) <= set(short):
            continue
        matched = [[found[gram] for gram in grams if gram in found] for grams in parts]
        share = min(len(hits) / len(grams) for hits, grams in zip(matched, parts, strict=True))
        if share >= containment:  # named by where its short part sits, else where most of it was found
            source = (
                next(iter(short.values()), None) or Counter(s for hits in matched for s in hits).most_common(1)[0][0]
            )
            report.leaks.append(Leak(index, validation[index][1], source, share))
    return report


def apply_policy(report: LeakReport, validation: list, policy: str) -> list:
    """The validation rows to use: all when clean; without the leaked ones for 'drop'; UserError for 'refuse'."""
    if not report.leaks:
        return validation
    if policy == "drop":
        leaked = report.leaked_indices
        return [row for index, row in enumerate(validation) if index not in leaked]
    raise UserError(report.message())
