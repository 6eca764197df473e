"""One DPO round on top of a finished offline-small run: preference accuracy on held-out pairs before/after.

The starting run is a copy of the sample persona's finished run (bench_persona.py --corpus sam
--recipe talklike: offline-small, LoRA r16, 80 steps). Pairs as in self-play fine-tuning (SPIN):
chosen = Sam's real reply, rejected = the tuned model's greedy reply to the same prompt.
  - training pairs: the run's training conversations (`--train-pairs` of them), generated here
  - held-out pairs: every held-out conversation, through `python -m training pairs RUN --from-heldout N`
The round trains on the training pairs and evaluates on the held-out ones (`--validation`), so TRL's
eval rewards/accuracies is measured on pairs it never trained on. Before and after, the script also
scores every held-out pair with the model alone (no reference): the share of pairs whose real reply
gets a higher log-probability than the model's own reply. The round runs as `python -m training train`
(its own process, nice'd), timed, with its peak resident memory.

    python bench/bench_prefs.py --start /work/wt/integrate/bench/out/persona/sam/runs/talklike \\
        --train-pairs 64 --steps 40 [--report] --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdoc import machine, replace_section  # noqa: E402  (bench/ is on sys.path when run as a script)

from training.train.config import RunConfig  # noqa: E402

OUT = ROOT / "bench" / "out" / "prefs"
HEADING = "## Preference round (DPO) on a finished run"


def copy_start(start: Path) -> Path:
    """The starting run copied (never written to), its data beside it and named as held out."""
    sft = OUT / "sft"
    if sft.exists():
        shutil.rmtree(sft)
    shutil.copytree(start, sft, ignore=shutil.ignore_patterns("checkpoints"))
    config = RunConfig.from_yaml(sft / "config.yaml")
    train = Path(config.train_file)
    for source in (train, train.with_suffix(".val.jsonl"), train.with_suffix(".persona.json")):
        shutil.copy(source, OUT / source.name)
    config = config.with_overrides(
        train_file=str(OUT / train.name), validation_file=str(OUT / f"{train.stem}.val.jsonl"), output_dir=str(sft)
    )
    config.save(sft / "config.yaml")
    return sft


def training_pairs(sft: Path, count: int, seed: int) -> Path:
    """SPIN pairs on `count` training conversations: real reply chosen, greedy tuned reply rejected."""
    import random

    from training.chat.batch import generate_batch
    from training.chat.decoding import preset
    from training.chat.generate import load_chat_model
    from training.report.pairs import write_pairs
    from training.train.dataset import load_rows

    rows = [r for r in load_rows(RunConfig.from_yaml(sft / "config.yaml")).train if r["prompt"][-1]["role"] == "user"]
    rows = random.Random(seed).sample(rows, min(count, len(rows)))
    model = load_chat_model(sft)
    replies = generate_batch(
        model, [(r["prompt"][:-1], r["prompt"][-1]["content"]) for r in rows], preset("Greedy", max_new_tokens=64)
    )
    pairs = [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": [{"role": "assistant", "content": reply}]}
        for r, reply in zip(rows, replies)
        if reply.strip() != r["completion"][0]["content"].strip()
    ]
    return write_pairs(pairs, OUT / "train_pairs.jsonl")


def sequence_logps(model, tokenizer, prompt: list[dict], reply: list[dict]) -> float:
    """log p(reply | prompt) summed over the reply's tokens, the quantity DPO compares."""
    import torch

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    full_ids = tokenizer.apply_chat_template(prompt + reply, tokenize=True, return_dict=True)
    start, ids = len(prompt_ids["input_ids"]), torch.tensor([full_ids["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
    return float(logps[start - 1 :].sum())


def preference_accuracy(run: Path, pairs: Path) -> dict:
    """Share of pairs whose chosen reply the run's model finds likelier than the rejected one."""
    from training.chat.loading import clear_model_cache, load_chat_model

    model = load_chat_model(run)
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    margins = [
        sequence_logps(model.model, model.tokenizer, r["prompt"], r["chosen"])
        - sequence_logps(model.model, model.tokenizer, r["prompt"], r["rejected"])
        for r in rows
    ]
    clear_model_cache()
    return {
        "pairs": len(rows),
        "accuracy": sum(m > 0 for m in margins) / len(rows),
        "mean_margin": sum(margins) / len(margins),
    }


def cli(*args, nice: bool = False) -> tuple[float, int]:
    """Run `python -m training ...`; return (seconds, peak RSS in MB of that process, sampled every 0.2 s)."""
    import psutil

    command = (["nice", "-n", "10"] if nice else []) + [sys.executable, "-m", "training", *map(str, args)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    return time.perf_counter() - started, round(peak / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="a finished LoRA run (copied, never written)")
    parser.add_argument("--train-pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rpo-alpha", type=float, default=0.0, help="the round's rpo_alpha (0 = plain DPO)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="also the persona report of both runs")
    parser.add_argument("--doc", type=Path)
    parser.add_argument("--from-results", action="store_true", help="only rewrite the doc from bench/out/prefs/")
    args = parser.parse_args()
    if args.from_results:
        result = json.loads((OUT / "result.json").read_text(encoding="utf-8"))
    else:
        result = measure(args)
    if args.report and not args.from_results:
        for name in ("sft", "dpo"):  # the CLI, as a user runs it; held-out rows of the starting run for both
            with open(OUT / f"report-{name}.json", "w", encoding="utf-8") as out:
                subprocess.run(
                    [sys.executable, "-m", "training", "report", OUT / name, "--json"], cwd=ROOT, stdout=out, check=True
                )
    if args.doc:
        replace_section(args.doc, HEADING, table(result, args) + report_table(), script="bench/bench_prefs.py")


def measure(args) -> dict:
    setup = machine()
    OUT.mkdir(parents=True, exist_ok=True)
    sft = copy_start(args.start)
    from training.report.heldout import held_out_rows

    held_out = len(held_out_rows(RunConfig.from_yaml(sft / "config.yaml")).rows)
    started = time.perf_counter()
    train_pairs = training_pairs(sft, args.train_pairs, args.seed)
    spin_seconds = time.perf_counter() - started
    eval_pairs = OUT / "heldout_pairs.jsonl"
    pairs_seconds, _ = cli("pairs", sft, "--from-heldout", held_out, "--out", eval_pairs)
    before = preference_accuracy(sft, eval_pairs)
    dpo = OUT / "dpo"
    shutil.rmtree(dpo, ignore_errors=True)
    train_seconds, peak_mb = cli(
        "train",
        "--preset",
        "preference-round",
        "--from-run",
        sft,
        "--data",
        train_pairs,
        "--validation",
        eval_pairs,
        "--validation-split",
        0,
        "--max-steps",
        args.steps,
        "--eval-steps",
        args.steps // 2,
        "--rpo-alpha",
        args.rpo_alpha,
        "--output",
        dpo,
        nice=True,
    )
    after = preference_accuracy(dpo, eval_pairs)
    metrics = [json.loads(line) for line in (dpo / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    evals = [m for m in metrics if m.get("eval_rewards/accuracies") is not None]
    result = {
        "setup": setup,
        "train_pairs": sum(1 for _ in train_pairs.open()),
        "spin_seconds": spin_seconds,
        "heldout_pairs_seconds": pairs_seconds,
        "before": before,
        "after": after,
        "train_seconds": train_seconds,
        "peak_rss_mb": peak_mb,
        "steps": args.steps,
        "rpo_alpha": args.rpo_alpha,
        "status": json.loads((dpo / "status.json").read_text()),
        "evals": [
            {k: m.get(f"eval_{k}") for k in ("rewards/accuracies", "rewards/margins", "loss")} | {"step": m["step"]}
            for m in evals
        ],
    }
    (OUT / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


def report_table() -> str:
    """The persona report's headline numbers for both runs, from report-sft.json and report-dpo.json."""
    reports = {name: OUT / f"report-{name}.json" for name in ("sft", "dpo")}
    if not all(path.is_file() and path.stat().st_size for path in reports.values()):
        return ""
    sft, dpo = (json.loads(path.read_text(encoding="utf-8")) for path in reports.values())
    rows = [
        ("held-out loss of the person's replies (lower)", lambda r: r["loss"]["person"]["tuned"]),
        ("held-out loss of the others' replies", lambda r: r["loss"]["others"]["tuned"]),
        ("gap others minus person (higher = learned the person, not texting)", lambda r: r["loss"]["gap"]["value"]),
    ]
    for group in ("voice", "content", "degeneracy"):
        for metric in sft["metrics"][group]:
            key, real = metric["key"], metric.get("real")
            goal = f"real {real:.3f}" if metric["goal"] == "match" and real is not None else metric["goal"]
            pick = lambda r, group=group, key=key: next(m["tuned"] for m in r["metrics"][group] if m["key"] == key)  # noqa: E731
            rows.append((f"{metric['label']} ({goal})", pick))
    lines = [
        "",
        "Persona report on the same 28 held-out conversations (`python -m training report RUN --json`, "
        "seed 0, the report's default sampled decoding), tuned model:",
        "",
        "| measure | starting run (SFT) | after the DPO round |",
        "|---|---|---|",
    ]
    for label, value in rows:
        before, after = value(sft), value(dpo)
        lines.append(f"| {label} | {_number(before)} | {_number(after)} |")
    return "\n".join(lines)


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(result: dict, args) -> str:
    b, a, s = result["before"], result["after"], result["status"]
    last = result["evals"][-1] if result["evals"] else {}
    rpo = f", rpo_alpha {result['rpo_alpha']:g} (RPO)" if result.get("rpo_alpha") else ""
    lines = [
        f"Command: `python bench/bench_prefs.py --start {args.start} --train-pairs {args.train_pairs} --steps {args.steps}"
        f"{f' --rpo-alpha {args.rpo_alpha:g}' if args.rpo_alpha else ''}{' --report' if args.report else ''} --doc docs/benchmarks.md`",
        "",
        f"Machine: {result['setup']}.",
        "",
        f"Starting run: offline-small LoRA r16, 80 steps on the sample persona (Sam). {result['train_pairs']} training "
        f"pairs (SPIN: real reply chosen, the run's greedy reply rejected) generated in {result['spin_seconds']:.0f} s; "
        f"{b['pairs']} held-out pairs by `python -m training pairs --from-heldout` in {result['heldout_pairs_seconds']:.0f} s "
        "(model load included).",
        "",
        "| held-out pairs | starting run (SFT) | after the DPO round |",
        "|---|---|---|",
        f"| real reply likelier than the model's own (log-prob, no reference) | {b['accuracy']:.0%} | {a['accuracy']:.0%} |",
        f"| mean log-prob margin, real minus model's reply | {b['mean_margin']:.1f} | {a['mean_margin']:.1f} |",
        f"| TRL eval rewards/accuracies (reference = the starting run) | 0% by definition (margins 0) | "
        f"{last.get('rewards/accuracies', float('nan')):.0%} |",
        f"| TRL eval loss | {'0.6931 (ln 2)' if not rpo else 'ln 2 + the real replies NLL (not logged)'} | "
        f"{last.get('loss', float('nan')):.4f}{' (DPO + rpo_alpha x NLL)' if rpo else ''} |",
        "",
        f"DPO round: `--preset preference-round`{rpo}, {s.get('step')} steps of 4 pairs, {result['train_seconds']:.0f} s wall "
        f"(process start and model load included), peak resident memory {result['peak_rss_mb']:,} MB, state {s.get('state')}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
