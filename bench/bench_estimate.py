"""Memory estimate vs measured: training.train.estimate's peak_gb against the peak RSS of real training runs.

Each config trains in its own process (`python -m training train CONFIG`, the CLI a user runs) and
its peak resident memory is read from the kernel (os.wait4's ru_maxrss, which covers the whole life
of the process, unlike metrics.jsonl's samples at log steps). The estimate is the one the Train tab
shows: estimate_for_data on the same config and data. Also measured: the fixed cost of a process
that has imported the training stack, which is what CPU_RUNTIME_GB stands for.

    python bench/bench_estimate.py              # 6 training runs, ~8 min on a loaded 2-core box
    python bench/bench_estimate.py --quick      # tiny models only
    python bench/bench_estimate.py --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import (  # noqa: E402
    OUT,
    ROOT,
    large_llama,
    prepare_sample,
    talklike_config,
    tiny_llama,
)
from benchdoc import machine, replace_section  # noqa: E402

from training.train.dataset import read_rows  # noqa: E402
from training.train.estimate import estimate_for_data  # noqa: E402
from training.train.footprint import CPU_RUNTIME_GB, GB  # noqa: E402
from training.train.runs import Run, read_metrics  # noqa: E402

MEMORY_OUT = OUT / "memory"
STACK = (
    "import torch, transformers, trl, peft, datasets, accelerate; import training.train.trainer, training.train.methods"
)
TARGET = 0.25  # the estimate should be within 25% of the measured peak


def peak_rss_gb(command: list[str], env: dict | None = None) -> tuple[float, int]:
    """Run `command` and return its peak resident memory (GiB) and exit code."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)  # rusage of this very child, not of all children
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        print(process.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    process.stderr.close()
    return usage.ru_maxrss * 1024 / GB, process.returncode  # Linux reports KiB


def long_rows(train_file: Path, out: Path, characters: int = 4000) -> Path:
    """Text rows of whole conversations, each longer than 512 tokens: every batch fills max_length,
    so activations (not the short chat turns) set the peak."""
    path = out / "long-text.jsonl"
    if path.exists():
        return path
    rows, current = [], ""
    for row in read_rows(train_file):
        for message in row["prompt"][1:] + row["completion"]:
            current += f"{message['role']}: {message['content']}\n"
        if len(current) >= characters:
            rows.append({"text": current})
            current = ""
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def configs(quick: bool) -> list[tuple[str, object]]:
    """(label, RunConfig): the tiny Llama on the chat sample, a 25M Llama on 512-token rows."""
    train_file = prepare_sample()
    tiny = talklike_config(tiny_llama(), train_file, steps=10)
    chosen = [
        ("tiny Llama 5M, LoRA r16, chat rows, batch 8", tiny),
        ("tiny Llama 5M, full fine-tune, chat rows, batch 8", dataclasses.replace(tiny, method="full")),
    ]
    if quick:
        return chosen
    long = talklike_config(large_llama(), long_rows(train_file, MEMORY_OUT), steps=6)
    long = dataclasses.replace(long, max_length=512, batch_size=8)
    return chosen + [
        ("Llama 25M, LoRA r16, 512-token rows, batch 8", long),
        (
            "Llama 25M, LoRA r16, 512-token rows, batch 8, activation checkpointing",
            dataclasses.replace(long, activation_checkpointing=True),
        ),
        ("Llama 25M, full fine-tune, 512-token rows, batch 8", dataclasses.replace(long, method="full")),
        (
            "Llama 25M, full fine-tune, 512-token rows, batch 8, activation checkpointing",
            dataclasses.replace(long, method="full", activation_checkpointing=True),
        ),
    ]


def measure_config(label: str, config, index: int) -> dict:
    run_dir = MEMORY_OUT / f"run-{index}"
    config = dataclasses.replace(config, output_dir=str(run_dir), name=f"memory-{index}")
    config_file = config.save(MEMORY_OUT / f"config-{index}.yaml")
    measured, code = peak_rss_gb([sys.executable, "-m", "training", "train", str(config_file)])
    if code:
        raise SystemExit(f"{label}: training failed (exit {code}); see {run_dir / 'train.log'}")
    result = estimate_for_data(config)
    logged = max((r["memory_mb"] for r in read_metrics(Run(run_dir))[0] if r.get("memory_mb")), default=0) / 1024
    return {
        "label": label,
        "measured": measured,
        "logged": logged,
        "estimate": result.peak_gb,
        "parts": result.memory_gb,
    }


def table(rows: list[dict], stack_gb: float) -> str:
    lines = [
        "| config | estimate GB | measured peak RSS GB | error | max RSS in metrics.jsonl GB | estimate parts (GB) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        error = row["estimate"] / row["measured"] - 1
        parts = ", ".join(f"{name} {value:.3f}" for name, value in row["parts"].items())
        flag = "" if abs(error) <= TARGET else " (off target)"
        lines.append(
            f"| {row['label']} | {row['estimate']:.2f} | {row['measured']:.2f} | {error:+.0%}{flag} "
            f"| {row['logged']:.2f} | {parts} |"
        )
    lines.append(f"| a process that only imported the training stack | | {stack_gb:.2f} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models only")
    parser.add_argument(
        "--doc", type=Path, help="write the table into this markdown file's '## Memory estimate vs measured'"
    )
    args = parser.parse_args()
    MEMORY_OUT.mkdir(parents=True, exist_ok=True)
    about = machine()
    stack_gb, _ = peak_rss_gb([sys.executable, "-c", STACK])
    rows = []
    for index, (label, config) in enumerate(configs(args.quick)):
        rows.append(measure_config(label, config, index))
        print(f"  {label}: estimate {rows[-1]['estimate']:.2f} GB, measured {rows[-1]['measured']:.2f} GB", flush=True)
    command = ("python bench/bench_estimate.py " + " ".join(sys.argv[1:])).strip()
    report = "\n\n".join(
        [
            f"Machine: {about}. CPU_RUNTIME_GB in training/train/footprint.py: {CPU_RUNTIME_GB}.",
            table(rows, stack_gb),
            f"Reproduce: `{command}`",
        ]
    )
    print("\n" + report)
    if args.doc:
        replace_section(
            args.doc, "## Memory estimate vs measured", MEMORY_INTRO + "\n\n" + report, script="bench/bench_estimate.py"
        )


MEMORY_INTRO = """training.train.estimate's peak (what the Train tab shows before a run) against the peak resident memory of
the same config trained by `python -m training train` in its own process (os.wait4's ru_maxrss, the
whole life of the process). fp32 on CPU, AdamW. On a CPU the fixed cost of a process that has
imported Python, torch, transformers, TRL, peft and datasets dominates small models; it is
CPU_RUNTIME_GB in the estimate."""


if __name__ == "__main__":
    main()
