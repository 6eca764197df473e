"""Knowledge files: generation speed, the leak check at 100k rows, and what a knowledge mix does to a run.

    python bench/bench_knowledge.py --part generate          # offline-small writing Q&A, 1 vs 2 torch threads
    python bench/bench_knowledge.py --part leaks             # find_leaks on 100,000 training rows, vs exact-only
    python bench/bench_knowledge.py --part mix --steps 30    # the sample persona alone vs + samples/knowledge
    python bench/bench_knowledge.py ... --doc docs/benchmarks.md

generate: the Q&A generator (training/data/generator.py) with offline-small on samples/knowledge's
documents, the same documents at 1 and at 2 torch threads in one process (the baseline side by side).
leaks: synthetic chat rows in the sample persona's words; planted leaks of seed 003's kind (held-out
Q&A pasted into raw text rows) must all be found; the baseline is an exact-duplicates-only pass over
the same rows (the words of every row, hashed), the floor any check pays to read the rows.
mix: two offline-small runs trained from the CLI with the same recipe and seed, the sample persona
alone and mixed with samples/knowledge's template rows (weight 0.3); then the held-out loss of the
hand-written Q&A in samples/knowledge_heldout.jsonl under base, persona-only and mixed models, and
the persona report (style numbers) of each run on the sample's held-out conversations.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdoc import machine, replace_section  # noqa: E402

from training.data import generator, knowledge  # noqa: E402
from training.data.leaks import find_leaks, words  # noqa: E402

OUT = ROOT / "bench" / "out" / "knowledge"
DOCS = ROOT / "samples" / "knowledge"
HELD_OUT_QA = ROOT / "samples" / "knowledge_heldout.jsonl"
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"
RECIPE = dict(
    model="offline-small",
    method="lora",
    lora_r=16,
    lora_alpha=32,
    lora_dropout=0.0,
    target_modules="all-linear",
    learning_rate=1e-3,
    scheduler="cosine",
    batch_size=8,
    max_length=256,
    padding_free=True,
    completion_only_loss=True,
    logging_steps=5,
    eval_steps=1000,
    save_steps=10_000,
    dtype="fp32",
    seed=42,
)


# ---- generation ----------------------------------------------------------------------------------


def bench_generation(pairs: int, documents: int) -> str:
    import torch

    from training.chat.loading import load_chat_model

    files = [f for f in knowledge.read_knowledge([DOCS]) if not f.is_code][:documents]
    load_chat_model("offline-small")  # loaded once, outside the timing
    ask = generator.ModelGenerator("offline-small", generator.TOKENS_PER_PAIR * pairs + 32)
    tokenizer = ask.model.tokenizer
    lines = [
        "| torch threads | documents | seconds per document | new tokens/s | pairs kept | answers with no pair |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    answers: list[str] = []

    def counted(prompt: str) -> str:
        answers.append(ask(prompt))
        return answers[-1]

    for threads in (1, 2):
        torch.set_num_threads(threads)
        answers.clear()
        rows, report = generator.generate_pairs(files, counted, pairs)
        tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
        lines.append(
            f"| {threads} | {report.documents} | {report.seconds / report.documents:.1f} | "
            f"{tokens / report.seconds:.1f} | {report.pairs} | {report.malformed} |"
        )
        (OUT / f"generated-{threads}-threads.json").write_text(json.dumps({"answers": answers, "rows": rows}, indent=1))
    return "\n".join(lines)


# ---- leak check -----------------------------------------------------------------------------------


def synthetic_rows(count: int, seed: int) -> list[dict]:
    """Chat rows made of the sample persona's words: 6-turn prompts, so ~60 words a row like prepared data."""
    from samples.sam_dialogues import CONVERSATIONS

    vocabulary = sorted({w for c in CONVERSATIONS for _, _, text in c["lines"] for w in text.split()})
    pick = random.Random(seed)

    def sentence() -> str:
        return " ".join(pick.choices(vocabulary, k=pick.randint(4, 14)))

    return [
        {
            "prompt": [{"role": "system", "content": "You are Sam Rivera."}]
            + [{"role": "user" if t % 2 == 0 else "assistant", "content": sentence()} for t in range(5)],
            "completion": [{"role": "assistant", "content": sentence()}],
        }
        for _ in range(count)
    ]


def bench_leaks(rows: int, planted: int) -> str:
    train = [(row, "chats.jsonl") for row in synthetic_rows(rows, seed=0)]
    validation = [(row, "chats.val.jsonl") for row in synthetic_rows(rows // 10, seed=1)]
    for index in range(planted):  # seed 003's accident: held-out Q&A pasted into raw text files
        row = validation[index * 7][0]
        pasted = f"Q: {row['prompt'][-1]['content']}\nA: {row['completion'][0]['content']}"
        train.append(({"text": f"File: notes/{index}.md\nsome notes\n{pasted}\nmore notes"}, "notes.jsonl"))
    started = time.perf_counter()
    exact = {
        " ".join(words(row["prompt"][-1]["content"] + " " + row["completion"][0]["content"])) for row, _ in validation
    }
    hits = sum(
        " ".join(words(" ".join(m["content"] for m in row.get("prompt", []) + row.get("completion", [])))) in exact
        for row, _ in train
    )
    exact_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = find_leaks(train, validation)
    seconds = time.perf_counter() - started
    caught = {leak.validation_index for leak in report.leaks}
    # Rows whose question and reply are both under 8 words have no 8-grams: only exact copies are found.
    checkable = {
        index * 7
        for index in range(planted)
        if any(
            len(words(part)) >= 8
            for part in (
                validation[index * 7][0]["prompt"][-1]["content"],
                validation[index * 7][0]["completion"][0]["content"],
            )
        )
    }
    assert checkable <= caught <= {index * 7 for index in range(planted)}, sorted(checkable - caught)
    return "\n".join(
        [
            "| check | training rows | validation rows | seconds | planted leaks found |",
            "|---|---:|---:|---:|---:|",
            f"| exact duplicates only (baseline: read and hash every row) | {len(train):,} | {len(validation):,} | {exact_seconds:.1f} | {hits} of {planted} |",
            f"| find_leaks: exact + 8-gram containment | {len(train):,} | {len(validation):,} | {seconds:.1f} | {len(caught)} of {planted} "
            f"(all {len(checkable)} with a question or reply of 8+ words) |",
        ]
    )


# ---- a run with and without the knowledge mix ----------------------------------------------------


def mix_data() -> tuple[Path, Path, Path]:
    folder = OUT / "data"
    folder.mkdir(parents=True, exist_ok=True)
    train = folder / "sam.jsonl"
    if not train.exists():
        command = [sys.executable, "-m", "training", "prepare", str(SAMPLE), "--me", "Sam Rivera", "--out", str(train)]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    built = knowledge.build(knowledge.template_rows(knowledge.read_knowledge([DOCS]), as_of="January 2025"), [])
    notes, _ = knowledge.save(built, folder / "knowledge.jsonl")
    shutil.copy(HELD_OUT_QA, folder / "knowledge.val.jsonl")  # the mixed run's eval covers them too
    return train, folder / "sam.val.jsonl", notes


def train_run(name: str, steps: int, **fields) -> tuple[Path, float]:
    from training.train.config import RunConfig

    run = OUT / "runs" / name
    if (run / "final").is_dir():
        return run, json.loads((run / "bench.json").read_text())["train_seconds"]
    config = RunConfig(output_dir=str(run), name=name, max_steps=steps, **{**RECIPE, **fields})
    config.save(OUT / f"{name}.yaml")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "training", "train", str(OUT / f"{name}.yaml")],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    (run / "bench.json").write_text(json.dumps({"train_seconds": seconds}))
    return run, seconds


def qa_loss(run: Path, use_adapter: bool) -> float:
    from training.chat.loading import load_chat_model
    from training.report.loss import reply_losses
    from training.train.config import RunConfig
    from training.train.dataset import read_rows

    rows = read_rows(HELD_OUT_QA)
    losses = reply_losses(load_chat_model(str(run)), rows, RunConfig.from_yaml(run / "config.yaml"), use_adapter)
    return float(losses.nll.sum() / losses.tokens.sum())


def bench_mix(steps: int, limit: int) -> str:
    from training.report.build import ReportOptions, build_report

    train, validation, notes = mix_data()
    runs = {
        "persona alone": train_run("persona", steps, train_file=str(train), validation_file=str(validation)),
        "persona + knowledge (0.3)": train_run(
            "persona-knowledge", steps, train_file=str(train), validation_file=str(validation), mix=[f"{notes}=0.3"]
        ),
    }
    base_loss = qa_loss(runs["persona alone"][0], use_adapter=False)
    results = {}
    for label, (run, seconds) in runs.items():
        saved = run / "bench-report.json"
        if not saved.exists():
            saved.write_text(json.dumps(build_report(run, ReportOptions(limit=limit, seed=0)), indent=1))
        results[label] = (
            json.loads(saved.read_text()),
            seconds,
            qa_loss(run, use_adapter=True),
            json.loads((run / "mix.json").read_text()),
        )
    lines = [
        f"| {steps} steps, batch 8, LoRA r16, lr 1e-3 | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(*values) for values in results.values()) + " |")

    row("training time, this CPU", lambda r, s, q, m: f"{s / 60:.1f} min")
    row("rows drawn (persona / knowledge)", lambda r, s, q, m: " / ".join(str(x["drawn"]) for x in m["sources"]))
    row(f"held-out knowledge Q&A loss (base {base_loss:.2f})", lambda r, s, q, m: f"**{q:.2f}**")
    row(
        "held-out persona loss (base → tuned)",
        lambda r, s, q, m: f"{r['loss']['person']['base']:.2f} → **{r['loss']['person']['tuned']:.2f}**",
    )
    for key, label in (
        ("style_distance", "style distance (floor)"),
        ("p_person", "P(person), classifier"),
        ("length_wasserstein", "reply length Wasserstein, chars"),
    ):
        row(label, lambda r, s, q, m, key=key: _metric_cell(r, key))
    return "\n".join(lines)


def _metric_cell(report: dict, key: str) -> str:
    metric = next(m for section in report["metrics"].values() for m in section if m["key"] == key)
    floor = f" ({metric['floor']:.2f})" if metric.get("floor") is not None else ""
    return f"{metric['base']:.2f} → **{metric['tuned']:.2f}**{floor}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["generate", "leaks", "mix"], action="append", help="default: all three")
    parser.add_argument("--pairs", type=int, default=3, help="generate: pairs asked per document")
    parser.add_argument("--documents", type=int, default=2, help="generate: documents per thread setting")
    parser.add_argument("--rows", type=int, default=100_000, help="leaks: training rows (validation: a tenth)")
    parser.add_argument("--steps", type=int, default=30, help="mix: optimizer steps per run")
    parser.add_argument("--limit", type=int, default=28, help="mix: held-out conversations per persona report")
    parser.add_argument("--threads", type=int, default=1, help="mix: torch threads in the training processes")
    parser.add_argument("--doc", type=Path, help="write the results under '## Knowledge files' in this markdown file")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training processes; generation sets its own
    sections = [f"Machine: {machine()}."]
    parts = args.part or ["generate", "leaks", "mix"]
    if "generate" in parts:
        sections.append(
            f"**Q&A generation, offline-small** ({args.pairs} pairs asked per document, greedy):\n\n"
            + bench_generation(args.pairs, args.documents)
        )
    if "leaks" in parts:
        sections.append("**Leak check before a run**:\n\n" + bench_leaks(args.rows, planted=50))
    if "mix" in parts:
        sections.append(
            "**The sample persona with and without a knowledge mix** (offline-small, one process per run, "
            f"{args.threads} torch thread(s); persona report on {args.limit} held-out conversations):\n\n"
            + bench_mix(args.steps, args.limit)
        )
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--doc" and sys.argv[i] != "--doc"]  # what measured it
    command = "python bench/bench_knowledge.py " + " ".join(shown)
    text = "\n\n".join([*sections, f"Reproduce: `{command.strip()}`"])
    print(text)
    if args.doc:
        replace_section(args.doc, "## Knowledge files", text, script="bench/bench_knowledge.py")


if __name__ == "__main__":
    os.environ.setdefault("TALKLIKE_DATA_DIR", str(OUT / "data-dir"))
    main()
