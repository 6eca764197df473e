"""Building a persona report for a run: score the real replies, generate the models' own, compare.

    build_report(run_dir, ReportOptions(limit=50, seed=0))  ->  dict (also saved as <run>/report.json)

On the run's held-out rows: the held-out loss of the person's real replies and of the control turns
under the tuned and the base model; then the tuned and the base model each answer every held-out
message (same prompt, decoding settings and seed), and metrics.py compares their replies with the
real ones. The base is the same weights with the adapter switched off, or for a full fine-tune the
run's base model loaded on its own. The report holds numbers only; the side-by-side examples (the
only text in it) are added when `include_examples` is set, because they quote private chats.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.report import metrics as scoring
from training.report.classifier import train_classifier
from training.report.heldout import control_row, held_out_rows, other_texts, reply_text
from training.report.loss import Cancelled, reply_losses

REPORT_FILE = "report.json"
EXAMPLES = 3  # side-by-side examples, picked at random with the seed
GENERATION_WEIGHT = 8  # a generated reply costs about as much as scoring this many rows, for the progress bar
Progress = Callable[[float, str], None]


def default_decoding(seed: int = 0):
    """Sampled, as people text (greedy repeats the likeliest reply); short, as chat replies are."""
    from training.chat.decoding import preset

    return preset("Balanced", max_new_tokens=64, seed=seed)


@dataclass
class ReportOptions:
    data: str | None = None  # a held-out JSONL instead of the run's validation data
    limit: int | None = None  # at most this many held-out rows, picked at random with the seed
    seed: int = 0  # picks rows, halves, bootstrap resamples, examples; and the decoding seed by default
    include_examples: bool = False  # quote a few held-out conversations (private text) in the report
    decoding: Any = None  # chat.decoding.DecodingSettings; None = default_decoding(seed)
    device: str | None = None
    memory: Any = None  # chat.memory_prompt.MemorySettings: also reply with memory (tuned+memory, base+memory)


def build_report(
    run_dir: str | os.PathLike,
    options: ReportOptions | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """The report for the run at `run_dir` (a folder or a run name), saved to its report.json.

    `progress(fraction, what)` is called as work is done; setting `cancel` raises loss.Cancelled.
    """
    from training.train.run_record import read_run

    options = options or ReportOptions()
    settings = (options.decoding or default_decoding(options.seed)).validate()
    run = read_run(run_dir)
    if run.model is None:
        raise UserError(
            f"{run.name}: no trained model in final/ yet (run is {run.status.get('state', 'created')}); "
            "report on it once training has finished"
        )
    config = run.config
    held = held_out_rows(config, options.data, options.limit, options.seed)
    generations = 4 if options.memory is not None else 2
    tracker = _Tracker(progress, cancel, work=len(held.rows) * (4 + generations * GENERATION_WEIGHT))
    tracker.note("loading the models")
    tuned, base, base_is = _models(run, config, options.device)
    if options.memory is not None and tuned.model.seq2seq:
        raise UserError(
            f"memory: {run.name} is an encoder-decoder model, trained without a system prompt to hold "
            "memories; report on it without memory"
        )
    started = time.perf_counter()
    losses = _losses(held.rows, tuned, base, config, tracker)
    mixed = mixed_source_losses(config, tuned, base, tracker.cancel, options.limit, options.seed)
    loss_seconds = time.perf_counter() - started
    replies = _replies(held.rows, tuned, base, settings, tracker)
    remembered = None
    if options.memory is not None:
        memory = training_memory(run, held.train, options.memory)
        remembered = (memory, _replies(held.rows, tuned, base, settings, tracker, memory))
    generation_seconds = time.perf_counter() - started - loss_seconds
    tracker.note("scoring")
    report = {
        **_about(run.name, config, tuned.model.seq2seq, base_is, held, settings, options.seed),
        **score(replies, held.train, held.rows, losses, tuned.model.separator, tuned.model.seq2seq, options.seed),
        "seconds": {"loss": round(loss_seconds, 1), "generation": round(generation_seconds, 1)},
    }
    if mixed:
        report["mixed_sources"] = mixed
    if remembered is not None:
        report["memory"] = _memory_section(*remembered, held, losses, tuned.model, options.seed)
    if options.include_examples:
        report["examples"] = examples(held.rows, replies, options.seed)
    save_report(run.path, report)
    tracker.note("done", done=True)
    return report


def _about(name: str, config, seq2seq: bool, base_is: str, held, settings, seed: int) -> dict:
    """What the report is of: the run, its model, the held-out data and the decoding."""
    return {
        "version": 1,
        "run": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": {"base_model": config.model, "method": config.method, "seq2seq": seq2seq, "base_is": base_is},
        "data": {
            "file": held.where,
            "rows": len(held.rows),
            "available": held.available,
            "left_out_as_trained": held.left_out_as_trained,
        },
        "decoding": dataclasses.asdict(settings),
        "seed": seed,
    }


def _memory_section(memory, memory_replies, held, losses: dict, model, seed: int) -> dict:
    """The replies with memory, scored like the others, and what the memory held."""
    scored = score(memory_replies, held.train, held.rows, losses, model.separator, model.seq2seq, seed)
    return {
        "k": memory.settings.k,
        "facts": len(memory.facts),
        "exchanges": len(memory.index),
        "metrics": scored["metrics"],
        "empty_replies": scored["empty_replies"],
    }


def score(
    replies: scoring.Replies,
    train_rows: list[dict],
    rows: list[dict],
    losses: dict,
    separator: str,
    seq2seq: bool,
    seed: int,
) -> dict:
    """Every metric for these replies: the model-free half of a report."""

    def as_trained(texts: list[str]) -> list[str]:
        # A seq2seq model learned replies with newlines turned into its separator (train/dataset.py).
        return [t.replace("\n", separator) for t in texts] if seq2seq else texts

    trained_rows = [row for row in train_rows if "prompt" in row]
    classifier = train_classifier(
        as_trained([reply_text(row) for row in trained_rows]), as_trained(other_texts(trained_rows)), seed
    )
    replies = dataclasses.replace(replies, real=as_trained(replies.real))
    style_found = scoring.style_metrics(replies, separator, seed)
    by_key = {metric["key"]: metric for metric in style_found}
    voice = [by_key[key] for key in ("style_distance", "length_wasserstein", "length_ks", "bubbles")]
    if classifier is not None:
        voice.insert(0, scoring.classifier_metrics(replies, classifier, as_trained(_last_other_turns(rows)), seed)[0])
    return {
        "loss": scoring.loss_metrics(losses["person"], losses["control"], seed),
        "metrics": {
            "voice": voice,
            "habits": [m for m in style_found if m["key"].startswith("rate_")],
            "content": scoring.content_metrics(replies, seed),
            "degeneracy": scoring.degeneracy_metrics(replies, seed),
        },
        "classifier": None if classifier is not None else "too few messages in the training data to train it",
        "empty_replies": scoring.empty_replies(replies),
        "plots": {"lengths": scoring.reply_lengths(replies), "habits": scoring.habit_rates(style_found)},
    }


def examples(rows: list[dict], replies: scoring.Replies, seed: int, count: int = EXAMPLES) -> list[dict]:
    """A few held-out messages with the real, tuned and base replies, picked at random with the seed."""
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(count, len(rows))))
    return [
        {
            "context": [m for m in rows[i]["prompt"] if m["role"] != "system"],
            "real": replies.real[i],
            "tuned": replies.tuned[i],
            "base": replies.base[i],
        }
        for i in picked
    ]


def save_report(run_path: Path, report: dict) -> Path:
    """<run>/report.json, written atomically (the export reads it for the model card)."""
    path = Path(run_path) / REPORT_FILE
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=".report.", delete=False)
    try:
        with handle:
            json.dump(report, handle, ensure_ascii=False, indent=1)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def load_report(run: str | os.PathLike) -> dict | None:
    """The last saved report of a run (a folder or a run name), or None when it has none (or an unreadable one)."""
    from training.train.run_record import read_run

    try:
        report = json.loads((read_run(run).path / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) else None


# ---- models, losses, replies ---------------------------------------------------------------------


@dataclass
class _Side:
    """One of the two models being compared: a loaded ChatModel, with its adapter on or off."""

    model: Any
    use_adapter: bool


def _models(run, config, device: str | None) -> tuple[_Side, _Side, str]:
    """(tuned, base, what the base is): one copy of the weights when the run trained an adapter."""
    from training.chat.generate import load_chat_model

    tuned = load_chat_model(run.path, device)
    if tuned.has_adapter:
        return _Side(tuned, True), _Side(tuned, False), "the same weights with the adapter switched off"
    base = load_chat_model(run.base_model, device)
    # Same prompts token for token: the run's tokenizer, template and prompt settings.
    base = dataclasses.replace(
        base,
        tokenizer=tuned.tokenizer,
        prompt=tuned.prompt,
        stop_strings=tuned.stop_strings,
        trained_length=tuned.trained_length,
    )
    return _Side(tuned, True), _Side(base, True), f"the base model {config.model}, loaded on its own (a full fine-tune)"


def mixed_source_losses(config, tuned, base, cancel, limit: int | None, seed: int) -> list[dict]:
    """Held-out loss (nats per reply token, tuned and base) on each mixed-in data set's validation rows:
    did the run learn the knowledge Q&A it was mixed with? Empty for a run without `mix`."""
    if not config.mix:
        return []
    from training.train.dataset import load_rows

    rows = load_rows(config, check_leaks=False)
    person = Path(config.train_file).name
    by_source: dict[str, list[dict]] = {}
    for row, name in zip(rows.validation, rows.validation_sources):
        if name != person and "prompt" in row:
            by_source.setdefault(name, []).append(row)
    found = []
    for name, source_rows in by_source.items():
        if limit is not None and limit < len(source_rows):
            source_rows = random.Random(seed).sample(source_rows, limit)
        scored = {
            side: reply_losses(which.model, source_rows, config, which.use_adapter, cancel)
            for side, which in (("tuned", tuned), ("base", base))
        }
        per_token = {side: float(losses.nll.sum() / max(losses.tokens.sum(), 1)) for side, losses in scored.items()}
        found.append({"file": name, "rows": len(source_rows), **per_token})
    return found


def _losses(rows: list[dict], tuned: _Side, base: _Side, config, tracker: _Tracker) -> dict:
    controls = [control_row(row) for row in rows]
    found: dict[str, dict] = {"person": {}, "control": {}}
    for group, group_rows in (("person", rows), ("control", controls)):
        for name, side in (("base", base), ("tuned", tuned)):
            tracker.note(f"held-out loss: {'your replies' if group == 'person' else 'the others'}, {name} model")
            found[group][name] = reply_losses(
                side.model, group_rows, config, side.use_adapter, tracker.cancel, advance=tracker.advance
            )
            tracker.advance(len(group_rows) - sum(row is not None for row in group_rows))
    return found


def training_memory(run, train_rows: list[dict], settings):
    """Memory of the rows the run trained on, and the facts beside its data: never a held-out row."""
    from training.chat.facts import facts_path, read_facts
    from training.chat.memory_prompt import training_rows_memory

    facts = settings.facts
    if facts is None:
        facts = read_facts(facts_path(run.config.train_file)) if run.config.train_file else []
    return training_rows_memory(train_rows, settings, facts)


def _replies(rows: list[dict], tuned: _Side, base: _Side, settings, tracker: _Tracker, memory=None) -> scoring.Replies:
    from training.chat.batch import generate_batch

    requests = [(row["prompt"][:-1], row["prompt"][-1]["content"]) for row in rows]
    generated: dict[str, list[str]] = {}
    with_memory = " with memory" if memory is not None else ""
    for name, side in (("tuned", tuned), ("base", base)):
        tracker.note(f"{name} model{with_memory} replying to {len(rows)} held-out messages")
        done = [0]

        def advance(count: int, name: str = name, done: list[int] = done) -> None:
            tracker.advance(GENERATION_WEIGHT * (count - done[0]))
            done[0] = count
            tracker.note(f"{name} model{with_memory} replying to held-out messages: {count} of {len(rows)}")

        try:
            generated[name] = generate_batch(
                side.model, requests, settings, side.use_adapter, tracker.cancel, advance, memory=memory
            )
        except UserError:
            tracker.check()  # stopped: report it as a cancel, not as an error
            raise
    return scoring.Replies([reply_text(row) for row in rows], generated["tuned"], generated["base"])


def _last_other_turns(rows: list[dict]) -> list[str]:
    """The other participants' turns the held-out replies answer: the classifier's held-out negatives."""
    return list(dict.fromkeys(row["prompt"][-1]["content"] for row in rows))


class _Tracker:
    """Progress as a fraction of the work, and the cancel check between pieces of it."""

    def __init__(self, progress: Progress | None, cancel: threading.Event | None, work: int):
        self.progress, self.cancel, self.work, self.done, self.what = progress, cancel, max(work, 1), 0, ""

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled

    def note(self, what: str, done: bool = False) -> None:
        self.check()
        self.what = what
        if done:
            self.done = self.work
        self._tell()

    def advance(self, amount: int) -> None:
        self.done = min(self.work, self.done + amount)
        self._tell()

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(self.done / self.work, self.what)
