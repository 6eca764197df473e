"""A report in words: one plain sentence per number, as markdown for the CLI, the app and the model card.

Only numbers are rendered, except the side-by-side examples, which appear only when the report
holds them (the user asked for them) and the caller asks for them too.
"""

from __future__ import annotations

import math

from training.report.metrics import verdict

# What each number says, in the words of a person reading it; {tuned} {base} {real} {floor} are filled in.
SENTENCES = {
    "p_person": "A classifier that learned your messages against your contacts' takes the tuned model's replies "
    "for yours with probability {tuned} (base {base}; your own held-out replies {real}, the ceiling)",
    "style_distance": "The tuned model's texting habits differ from yours by {tuned}, summed over seven habits "
    "(base {base}; two halves of your own replies differ by {floor})",
    "length_wasserstein": "Its reply lengths are {tuned} characters off yours on average (base {base}; "
    "two halves of your own replies differ by {floor})",
    "length_ks": "The largest gap between its reply-length distribution and yours is {tuned}, where 0 is the same "
    "and 1 no overlap (base {base}; your own halves {floor})",
    "bubbles": "It sends {tuned} messages per turn (base {base}, you {real})",
    "rate": "{label}: {tuned} of the tuned model's replies (base {base}, you {real})",
    "chrf": "Its replies share {tuned} chrF with what you actually answered (base {base}; two of your replies to "
    "different messages share {floor}): this is topic overlap, not voice, so weigh it lightly",
    "repetition": "{tuned} of the word 3-grams in a tuned reply repeat within it (base {base}, you {real}); "
    "high means looping",
    "duplicates": "{tuned} of the tuned model's replies are given word for word to another message too "
    "(base {base}, you {real})",
    "distinct": "{label}: tuned {tuned}, base {base}, you {real}; low means it says the same things over and over",
}
PERCENT_UNITS = ("share",)


def sentence(metric: dict) -> str:
    """The metric's one plain sentence, ending with what the comparison with the base shows."""
    key = metric["key"]
    template = SENTENCES.get("rate" if key.startswith("rate_") else "distinct" if key.startswith("distinct_") else key)
    text = template.format(
        label=metric["label"].capitalize(),
        **{name: _value(metric[name], metric["unit"]) for name in ("tuned", "base", "real", "floor")},
    )
    return text + _reading(metric) + "."


def _reading(metric: dict) -> str:
    if metric["key"].startswith("distinct_"):
        return ""  # no interval: see metrics.degeneracy_metrics
    found = verdict(metric)
    closer = "higher than the base's" if metric["goal"] == "higher" else "closer to you than the base"
    reading = {
        "tuned": f": {closer}, beyond chance",
        "base": ": the base does better here, beyond chance",
        "unclear": ": no clear difference from the base at this sample size",
    }[found]
    if _within_floor(metric):
        reading += ", and within your own variation"
    return reading


def _within_floor(metric: dict) -> bool:
    tuned, real, floor = metric["tuned"], metric["real"], metric["floor"]
    if tuned is None or floor is None or metric["goal"] == "higher":
        return False
    gap = tuned if metric["goal"] == "lower" else (abs(tuned - real) if real is not None else None)
    return gap is not None and gap <= floor


def loss_sentences(loss: dict) -> list[str]:
    """The held-out loss of your replies, of the control turns, and the person-specific gap."""
    lines = []
    for group, who in (
        ("person", "Your held-out replies"),
        ("others", "Your contacts' turns in the same chats (the control)"),
    ):
        base, tuned = loss[group]["base"], loss[group]["tuned"]
        if base is None or tuned is None:
            lines.append(f"{who}: not scored (no such turns in these rows).")
            continue
        lines.append(
            f"{who}: loss {base:.3f} → {tuned:.3f} nats per token (perplexity {math.exp(base):.1f} → "
            f"{math.exp(tuned):.1f}, {(tuned - base) / base:+.0%})."
        )
    gap = loss["gap"]
    if gap["value"] is None:
        return lines
    low, high = gap["ci"]
    meaning = (
        "the tuned model learned something about you in particular, beyond texting in general"
        if low is not None and low > 0
        else "it learned your contacts' way of texting more than yours: better at chat in general, not at you"
        if high is not None and high < 0
        else "no clear difference: so far it learned texting in general as much as it learned you"
    )
    lines.append(
        f"Person-specific gap (drop on you minus drop on the others): {gap['value']:+.3f} nats per token "
        f"{_interval([low, high], '')}, noise floor {_value(gap['floor'], '')}: {meaning}."
    )
    return lines


SECTIONS = {
    "voice": "Does it sound like you?",
    "habits": "Texting habits",
    "content": "Content overlap",
    "degeneracy": "Degeneracy check",
}
SOURCE_NAMES = {"real": "you (real)", "tuned": "tuned", "base": "base"}


def to_markdown(report: dict, examples: bool = True) -> str:
    """The whole report: what it ran on, then every number with its sentence (and examples if held)."""
    parts = [header(report), loss_markdown(report), *(metrics_markdown(report, section) for section in SECTIONS)]
    if report.get("mixed_sources"):
        parts.append(mixed_sources_markdown(report))
    if report.get("memory"):
        parts.append(memory_markdown(report))
    if examples and report.get("examples"):
        parts.append(examples_markdown(report["examples"]))
    return "\n\n".join(parts)


def header(report: dict) -> str:
    data, model, decoding = report["data"], report["model"], report["decoding"]
    how = "greedy" if not decoding["do_sample"] else f"sampled at temperature {decoding['temperature']}"
    return (
        f"## Persona report: {report['run']}\n\n"
        f"{data['rows']} held-out replies from {data['file']} (of {data['available']}); base = {model['base_is']}; "
        f"replies {how}, at most {decoding['max_new_tokens']} new tokens, seed {report['seed']}. "
        "Numbers in brackets are 95% bootstrap intervals; the noise floor is the same number between two "
        "random halves of your own replies."
    )


def loss_markdown(report: dict) -> str:
    return "### Held-out loss\n\n" + "\n".join(f"- {line}" for line in loss_sentences(report["loss"]))


def mixed_sources_markdown(report: dict) -> str:
    """The held-out loss on each data set mixed into the run (knowledge Q&A, raw text), base vs tuned."""
    lines = [
        "### Mixed-in data sets",
        "",
        "Held-out loss on each data set mixed into the run (its own held-out rows; nats per reply token, lower is better).",
        "",
        "| data set | held-out rows | base | tuned |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {s['file']} | {s['rows']} | {s['base']:.3f} | {s['tuned']:.3f} |" for s in report["mixed_sources"]]
    return "\n".join(lines)


def metrics_markdown(report: dict, section: str) -> str:
    rows = [f"- {sentence(metric)} {_intervals(metric)}".rstrip() for metric in report["metrics"][section]]
    notes = []
    if section == "voice" and report.get("classifier"):
        notes.append(f"The classifier was skipped: {report['classifier']}.")
    empty = report.get("empty_replies") or {}
    if section == "degeneracy" and (empty.get("tuned") or empty.get("base")):
        notes.append(f"Empty replies: tuned {empty.get('tuned', 0)}, base {empty.get('base', 0)}.")
    return f"### {SECTIONS[section]}\n\n" + "\n".join(rows + notes)


def memory_markdown(report: dict) -> str:
    """Every reply metric with memory on (the same held-out messages, prompts, decoding and seed) next to without."""
    memory = report["memory"]
    lines = [
        "### With memory",
        "",
        f"The same held-out messages answered with memory on: the {memory['k']} past exchanges most like each "
        f"message, recalled from the {memory['exchanges']} the run trained on (never a held-out conversation), "
        f"and {memory['facts']} facts, in the system prompt.",
        "",
        "| metric | you | tuned | tuned+memory | base | base+memory |",
        "|---|---|---|---|---|---|",
    ]
    with_memory = {m["key"]: m for section in memory["metrics"].values() for m in section}
    for section in SECTIONS:
        for metric in report["metrics"][section]:
            other = with_memory.get(metric["key"])
            if other is None:
                continue
            values = (metric["real"], metric["tuned"], other["tuned"], metric["base"], other["base"])
            lines.append(f"| {metric['label']} | " + " | ".join(_value(v, metric["unit"]) for v in values) + " |")
    return "\n".join(lines)


def preference_round_markdown(method: str, metrics: list[dict]) -> str:
    """A DPO/KTO round's last evaluation on its held-out pairs (TRL's eval_* metrics), in one line.

    The rewards are beta x the log-ratio of the round's model over the starting run: before the round
    every reward is 0, so accuracy 0 and the DPO loss ln 2 = 0.693.
    """
    evaluated = [m for m in metrics if m.get("eval_loss") is not None and m.get("step") is not None]
    if not evaluated:
        return f"**Preference round ({method})**: no evaluation on held-out pairs yet (validation pairs, eval_steps)."
    last = evaluated[-1]
    parts = []
    if last.get("eval_rewards/accuracies") is not None:
        parts.append(f"preference accuracy {last['eval_rewards/accuracies']:.0%} (chosen reward > rejected)")
    if last.get("eval_rewards/margins") is not None:
        parts.append(f"reward margin {last['eval_rewards/margins']:+.4f}")
    for key, label in (("eval_rewards/chosen", "chosen reward"), ("eval_rewards/rejected", "rejected reward")):
        if last.get(key) is not None:
            parts.append(f"{label} {last[key]:+.4f}")
    parts.append(f"eval loss {last['eval_loss']:.4f} (before the round: 0.6931)")
    return f"**Preference round ({method})**, held-out pairs at step {last['step']}: " + ", ".join(parts) + "."


def length_histogram(report: dict, buckets: int = 12) -> list[dict]:
    """Share of each source's replies per length bucket (characters): the overlaid length plot's points."""
    lengths = report["plots"]["lengths"]
    longest = max((max(values, default=0) for values in lengths.values()), default=0)
    width = max(1, math.ceil((longest + 1) / buckets))
    points = []
    for source, values in lengths.items():
        for start in range(0, width * buckets, width):
            share = sum(start <= value < start + width for value in values) / len(values) if values else 0.0
            points.append({"characters": start, "share of replies": share, "replies": SOURCE_NAMES[source]})
    return points


def habit_bars(report: dict) -> list[dict]:
    """One bar per habit and source ("emoji · tuned"): gradio stacks bars that share an x value."""
    return [
        {"habit": f"{habit} · {SOURCE_NAMES[source]}", "share of replies": value, "replies": SOURCE_NAMES[source]}
        for habit, values in report["plots"]["habits"].items()
        for source, value in values.items()
        if value is not None
    ]


def examples_markdown(examples: list[dict]) -> str:
    parts = ["### Side by side (held-out messages, picked at random)"]
    for number, example in enumerate(examples, start=1):
        context = "\n".join(
            f"> **{'you' if m['role'] == 'assistant' else 'them'}:** {_quoted(m['content'])}"
            for m in example["context"]
        )
        replies = "\n".join(
            f"- **{who}:** {_quoted(example[key]) or '(empty)'}"
            for who, key in (("you (real)", "real"), ("tuned", "tuned"), ("base", "base"))
        )
        parts.append(f"**Example {number}**\n\n{context}\n\n{replies}")
    return "\n\n".join(parts)


def card_section(report: dict, include_examples: bool = False) -> str:
    """The model card's persona-report section: the headline numbers (and examples only if asked)."""
    lines = [
        "## Persona report",
        f"Measured by talklike on {report['data']['rows']} held-out replies the model "
        "never trained on, against the base model (same prompts, decoding and seed).",
        "",
    ]
    lines += [f"- {line}" for line in loss_sentences(report["loss"])]
    headline = {"p_person", "style_distance", "length_wasserstein", "chrf"}
    metrics = [m for section in report["metrics"].values() for m in section if m["key"] in headline]
    lines += ["", "| metric | you | tuned | base | noise floor |", "|---|---|---|---|---|"]
    for metric in metrics:
        cells = [_value(metric[name], metric["unit"]) for name in ("real", "tuned", "base", "floor")]
        lines.append(f"| {metric['label']} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if include_examples and report.get("examples"):
        text += "\n\n" + examples_markdown(report["examples"])
    return text


def _intervals(metric: dict) -> str:
    shown = [
        f"{name} {_interval(metric['ci'][name], metric['unit'])}"
        for name in ("tuned", "base")
        if None not in metric["ci"][name]
    ]
    return f"({', '.join(shown)})" if shown else ""


def _interval(bounds: list, unit: str) -> str:
    low, high = bounds
    if low is None or high is None:
        return ""
    return f"[{_value(low, unit)}, {_value(high, unit)}]"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in PERCENT_UNITS:
        return f"{value:.0%}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _quoted(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())
