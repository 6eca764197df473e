"""Does a run sound like its person? Train offline-small on real chats, then run the persona report.

Two personas: the bundled sample (Sam Rivera, written for this project) and a real person from the
BYU Chit-Chat corpus (PyPI chitchat-dataset 0.9.0, converted by bench/chitchat_export.py to a
WhatsApp export and prepared with `python -m training prepare`, as a user would). Each recipe is
trained from the CLI (`python -m training train CONFIG`, its own process, timed on this machine),
then `build_report` compares the tuned model with the base (the same weights, adapter off) on the
held-out conversations: the baseline runs side by side in the same report.

    python bench/bench_persona.py --corpus sam --recipe reference
    python bench/bench_persona.py --corpus chitchat --recipe reference --recipe long --limit 80
    python bench/bench_persona.py ... --doc docs/benchmarks.md     # rewrite the doc's generated tables

Results (the report JSON of every run, numbers only) go to bench/out/persona/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdoc import machine, replace_section  # noqa: E402  (bench/ is on sys.path when run as a script)
from chitchat_export import corpus, export  # noqa: E402

from training.report.build import ReportOptions, build_report, default_decoding  # noqa: E402
from training.train.config import RunConfig  # noqa: E402

OUT = ROOT / "bench" / "out" / "persona"
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"
SPEAKER = "549cc1d1"  # 11,215 reply turns; lowercase, dropped apostrophes, "hahaha"
# The reference recipe (LoRA r16 on all linear layers, 80 steps of batch 8), then what it
# takes to learn the person rather than texting in general: more steps, a higher rank.
RECIPES: dict[str, dict] = {
    "reference": dict(lora_r=16, lora_alpha=32, max_steps=80, learning_rate=2e-4),
    "long": dict(lora_r=16, lora_alpha=32, max_steps=240, learning_rate=2e-4),
    "long-r64": dict(lora_r=64, lora_alpha=64, max_steps=240, learning_rate=2e-4),
    "hot": dict(lora_r=16, lora_alpha=32, max_steps=240, learning_rate=1e-3),
    # The offline-small preset's settings (lr 1e-3, no dropout) in the reference's 80 steps: the same time.
    "talklike": dict(lora_r=16, lora_alpha=32, max_steps=80, learning_rate=1e-3, lora_dropout=0.0),
}
COMMON = dict(
    method="lora",
    target_modules="all-linear",
    lora_dropout=0.05,
    batch_size=8,
    scheduler="cosine",
    warmup_ratio=0.03,
    max_length=256,
    padding_free=True,
    completion_only_loss=True,
    logging_steps=10,
    save_steps=10_000,
    dtype="fp32",
    seed=42,
)


def persona_data(name: str, conversations: int) -> tuple[Path, Path, str]:
    """(train, validation, me) for a corpus, prepared once into bench/out/persona/<name>/."""
    folder = OUT / name
    train = folder / "data.jsonl"
    me = "Sam Rivera" if name == "sam" else SPEAKER
    if not train.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source = SAMPLE
        if name == "chitchat":
            source = folder / "export.zip"
            print(json.dumps(export(corpus(), SPEAKER, conversations, seed=0, out=source)))
        command = [sys.executable, "-m", "training", "prepare", str(source), "--me", me, "--out", str(train)]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return train, folder / "data.val.jsonl", me


def train_run(name: str, recipe: str, model: str, train: Path) -> tuple[Path, float]:
    """Train one recipe from the CLI in its own process; (run folder, wall seconds)."""
    run = OUT / name / "runs" / recipe
    if (run / "final").is_dir():
        return run, json.loads((run / "bench.json").read_text())["train_seconds"]
    config = RunConfig(
        model=model, train_file=str(train), output_dir=str(run), name=recipe, **{**COMMON, **RECIPES[recipe]}
    )
    config_file = OUT / name / f"{recipe}.yaml"
    config.save(config_file)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "training", "train", str(config_file)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    (run / "bench.json").write_text(json.dumps({"train_seconds": seconds}))
    return run, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["sam", "chitchat"], action="append", help="default: both")
    parser.add_argument("--recipe", choices=list(RECIPES), action="append", help="default: reference")
    parser.add_argument("--model", default="offline-small", help="base model (default offline-small)")
    parser.add_argument("--conversations", type=int, default=120, help="chitchat: the speaker's conversations to use")
    parser.add_argument("--limit", type=int, default=80, help="held-out replies per report")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads, here and in the training process "
        "(1 on a machine other jobs use: competing OpenMP threads can slow a step tenfold)",
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="only what earlier invocations measured (their saved reports): rewrite the tables, train nothing",
    )
    parser.add_argument("--doc", type=Path, help="write the tables into this markdown file's '## Persona report'")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    about = machine()
    sections = []
    for name in args.corpus or ["sam", "chitchat"]:
        train, validation, me = persona_data(name, args.conversations)
        results = {}
        for recipe in args.recipe or ["reference"]:
            saved = OUT / name / f"{recipe}.report.json"
            if args.cached_only and not saved.exists():
                continue
            run, seconds = train_run(name, recipe, args.model, train)
            if saved.exists():  # an earlier invocation's (delete it to report again)
                report = json.loads(saved.read_text())
            else:
                options = ReportOptions(data=str(validation), limit=args.limit, seed=0, decoding=default_decoding(0))
                report = build_report(run, options, progress=_progress)
                print(file=sys.stderr)
                saved.write_text(json.dumps(report, indent=1))
            results[recipe] = (report, seconds)
        if results:
            sections.append(table(name, me, train, results))
    measured = [arg for arg in sys.argv[1:] if arg != "--cached-only"]  # what measured it, not what wrote the table
    command = "python bench/bench_persona.py " + " ".join(measured)
    text = "\n\n".join([f"Machine: {about}.", *sections, f"Reproduce: `{command.strip()}`"])
    print("\n" + text)
    if args.doc:
        replace_section(args.doc, "## Persona report", text, script="bench/bench_persona.py")


def table(name: str, me: str, train: Path, results: dict) -> str:
    rows = sum(1 for _ in open(train, encoding="utf-8"))
    title = {"sam": "Sample persona (Sam Rivera, fictional)", "chitchat": f"Chit-Chat speaker {me} (real)"}[name]
    header = [
        "| | "
        + " | ".join(
            f"{r} (r{RECIPES[r]['lora_r']}, {RECIPES[r]['max_steps']} steps, lr {RECIPES[r]['learning_rate']:g})"
            for r in results
        )
        + " |",
        "|---|" + "---:|" * len(results),
    ]
    lines = [
        f"**{title}**: {rows:,} training rows; report on {next(iter(results.values()))[0]['data']['rows']} "
        "held-out replies, sampled (Balanced, seed 0, 64 new tokens), base = adapter off.",
        "",
        *header,
    ]
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(report, seconds) for report, seconds in results.values()) + " |")
    return "\n".join(lines)


def _metric(report: dict, key: str) -> dict:
    return next(m for section in report["metrics"].values() for m in section if m["key"] == key)


def _arrow(metric: dict, digits: int = 2) -> str:
    return f"{metric['base']:.{digits}f} → **{metric['tuned']:.{digits}f}**"


def _loss(group: str):
    return lambda report, _: f"{report['loss'][group]['base']:.2f} → **{report['loss'][group]['tuned']:.2f}**"


def _gap(report: dict, _) -> str:
    gap = report["loss"]["gap"]
    return f"**{gap['value']:+.3f}** [{gap['ci'][0]:+.3f}, {gap['ci'][1]:+.3f}] (floor {gap['floor']:.3f})"


ROWS = [
    ("training time, this CPU", lambda report, seconds: f"{seconds / 60:.1f} min"),
    ("held-out loss, the person (base → tuned)", _loss("person")),
    ("held-out loss, the others (control)", _loss("others")),
    ("person-specific gap, nats/token [95% CI]", _gap),
    (
        "P(person), classifier (real replies)",
        lambda r, _: f"{_arrow(_metric(r, 'p_person'))} ({_metric(r, 'p_person')['real']:.2f})",
    ),
    (
        "style distance (floor)",
        lambda r, _: f"{_arrow(_metric(r, 'style_distance'))} ({_metric(r, 'style_distance')['floor']:.2f})",
    ),
    (
        "reply length Wasserstein, chars (floor)",
        lambda r, _: f"{_arrow(_metric(r, 'length_wasserstein'), 1)} ({_metric(r, 'length_wasserstein')['floor']:.1f})",
    ),
    ("chrF vs the real reply (low weight)", lambda r, _: _arrow(_metric(r, "chrf"), 1)),
    ("distinct-2 (real)", lambda r, _: f"{_arrow(_metric(r, 'distinct_2'))} ({_metric(r, 'distinct_2')['real']:.2f})"),
]


def _progress(fraction: float, what: str) -> None:
    print(f"\r{fraction:4.0%} {what[:70]:<70}", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TALKLIKE_DATA_DIR", str(OUT / "data"))
    main()
