"""GPU check: the training engine's own paths on a CUDA machine, in one short run.

Per model (offline-small's architecture, and a ~0.8B random Llama built from a config), each row is
started as `python -m training train CONFIG` (what the CLI and the Train tab run), then answers one
message through `python -m training chat` and is merged by `python -m training export --merge`:

  lora-peft        LoRA in bf16 through transformers + peft (use_unsloth off)
  lora-unsloth     LoRA as use_unsloth auto picks it: Unsloth where importable, else the fallback
                   and its reason; its chat loads in 8 bits
  unsloth-hidden   the same with Unsloth made unimportable: the clean fallback on a GPU
  qlora4           QLoRA, base in 4 bits (bitsandbytes); its chat loads in 4 bits
  qlora4-unsloth   QLoRA through Unsloth
  adamw8           LoRA with 8-bit AdamW (bitsandbytes)

Per row: real (non-pad) tokens/s after the warm-up steps, the process's peak GPU memory (NVML) and
torch's own peak, the loss at the first and last step, and the estimator's predicted peak next to
the measured one. A markdown table and JSON go to --out ($OUT on the device machine).

--dry-run runs the same rows on the CPU with the offline tiny model: no Unsloth, no bitsandbytes,
so it checks that each falls back or refuses with the message a user would see, and that the
script itself still runs (tests/test_gpu_check.py).

    python bench/gpu_check.py --dry-run                  # CPU, about a minute
    bash bench/gpu_carry.sh                              # prepares .gpu/, prints the device command
    python bench/gpu_check.py --out "$OUT"               # on the GPU machine: under 8 minutes on an H100
    python bench/gpu_check.py --doc docs/benchmarks.md --from-json RESULT.json   # record a run
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_report import merge_reports, settle, write_doc, write_report
from gpu_rows import ROWS, Row, expectations
from gpu_setup import build_models, environment, missing_packages, prepare_data
from gpu_steps import (
    ROOT,
    GpuMemory,
    Measured,
    child_environment,
    lora_keys,
    pack_logs,
    parameter_count,
    run_in_process,
    run_measured,
    unimportable_unsloth,
)

PROMPT = "hey! what are you up to this weekend?"
EXPORT_GRACE_S = 90  # the last rows' merged exports may finish after the budget (a 0.78B merge: ~30 s)
GPU_STEPS, DRY_STEPS = 20, 2  # tokens/s counts the steps after bench_train's 3 warm-up steps
DRY_RUN_FIELDS = {"dtype": "fp32", "batch_size": 2, "max_length": 128}


@dataclass
class Check:
    """One run of the check: where it works, what it may spend, and the results so far."""

    out: Path
    work: Path
    dry_run: bool
    steps: int
    deadline: float
    gpu: GpuMemory = field(default_factory=GpuMemory)
    results: list[dict[str, Any]] = field(default_factory=list)
    exports: list[threading.Thread] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.time()

    def run(self, args: list[str], log_name: str, hide_unsloth: bool = False, timeout: float = 30) -> Measured:
        """`python -m training ARGS`: its own process on a GPU, measured; in this one in a dry run."""
        hidden = unimportable_unsloth(self.work / "no-unsloth") if hide_unsloth else None
        env = child_environment(self.work / "data", self.dry_run, hidden)
        log = self.work / "logs" / f"{log_name}.log"
        if self.dry_run:
            return run_in_process(args, log, env)
        return run_measured(args, log, self.gpu, env, timeout=max(self.left(), timeout))


def row_config(check: Check, row: Row, model: str, train_file: Path):
    """The persona-small recipe on `model`, for `check.steps` steps, logging every step; a dry run
    checks paths and messages, not speed, so there its batches are small."""
    from training.train.presets import get_preset

    config = dataclasses.replace(
        get_preset("persona-small"),
        model=model,
        train_file=str(train_file),
        max_steps=check.steps,
        logging_steps=1,
        save_steps=check.steps + 1,
        name="",
        **(DRY_RUN_FIELDS if check.dry_run else {}),
    )
    return config.with_overrides(**row.fields)


# ---- one row ------------------------------------------------------------------------------------------


def run_row(check: Check, row: Row, model_key: str, model: dict[str, str], train_file: Path) -> dict[str, Any]:
    key = f"{model_key}-{row.name}"
    run_dir = check.work / "runs" / key
    config = row_config(check, row, model["path"], train_file)
    config = dataclasses.replace(config, output_dir=str(run_dir))
    config_file = config.save(check.work / "configs" / f"{key}.yaml")
    result: dict[str, Any] = {
        "model": model_key,
        "row": row.name,
        "settings": row.fields,
        "chat_load_in": row.chat_load_in,
    }
    trained = check.run(["train", str(config_file)], f"{key}-train", hide_unsloth=row.hide_unsloth)
    result["train"] = train_result(run_dir, trained)
    if result["train"]["state"] == "completed":
        result["train"]["predicted_gb"] = predicted_peak(check, config, result["train"]["backend"])
    if result["train"]["state"] == "completed" and row.chat_load_in is not None:
        result["chat"] = chat_step(check, run_dir, key, row.chat_load_in)
        result["export"] = {"state": "running"}
        if check.dry_run:  # one process: nothing to overlap
            export_step(check, run_dir, key, model["path"], result)
            return result
        export = threading.Thread(target=export_step, args=(check, run_dir, key, model["path"], result), daemon=True)
        export.start()  # a CPU job: it overlaps the next row's GPU work instead of adding to it
        check.exports.append(export)
    return result


def train_result(run_dir: Path, done) -> dict[str, Any]:
    from bench_train import logged_tokens_per_s

    from training.train.runs import Run, read_metrics, read_status

    run = Run(run_dir)
    status = read_status(run)
    records = read_metrics(run)[0] if run.metrics_path.exists() else []
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    return {
        "state": _train_state(status, done.returncode),
        "reason": status.get("reason") or (done.error_line() if done.returncode else ""),
        "backend": status.get("backend"),
        "backend_note": status.get("backend_note", ""),
        "notes": done.talklike_lines(),
        "seconds": round(done.seconds, 1),
        "steps": status.get("step"),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "tokens_per_s": _finite(logged_tokens_per_s(run)) if records else None,
        "torch_peak_mb": max((r.get("memory_mb") or 0 for r in records), default=None),
        "peak_gpu_mb": done.peak_gpu_mb,
        "peak_rss_mb": round(done.peak_rss_mb, 1),
    }


def _train_state(status: dict[str, Any], returncode: int) -> str:
    """completed; refused (a user error: what the machine or config cannot do); failed (oom or crash);
    or crashed, when the process died without saying why (killed at the time budget, say)."""
    if status.get("state") == "completed" and returncode == 0:
        return "completed"
    if status.get("state") == "failed":
        return "refused" if status.get("kind") == "user" else f"failed ({status.get('kind', 'crash')})"
    return f"crashed (exit {returncode})"


def _finite(value: float) -> float | None:
    return round(value, 1) if value == value else None  # NaN: too few steps after the warm-up


def predicted_peak(check: Check, config, backend: str | None) -> float:
    """The estimator's peak for this run, on this device, with the backend that actually trained it."""
    from training.train.estimate import SPACE_DEVICES, Device, estimate_for_data

    device = None  # a dry run: the estimator's own CPU model
    described = check.gpu.describe()
    if described is not None and not check.dry_run:
        name, total_gb = described
        tflops = next((d.tflops for d in SPACE_DEVICES if d.name.split()[1] in name), 100.0)
        device = Device(name, total_gb, tflops, 0.0)  # read through NVML: no CUDA context in this process
    return round(estimate_for_data(config, device=device, backend=backend).peak_gb, 3)


def chat_step(check: Check, run_dir: Path, key: str, load_in: str) -> dict[str, Any]:
    args = ["chat", str(run_dir), "--prompt", PROMPT, "--greedy", "--max-new-tokens", "24", "--load-in", load_in]
    done = check.run(args, f"{key}-chat")
    state = "ok" if done.returncode == 0 else "refused" if done.returncode == 2 else f"crashed (exit {done.returncode})"
    return {
        "state": state,
        "load_in": load_in,
        "reply": done.stdout.strip()[:120],
        "notes": done.talklike_lines(),
        "reason": done.error_line() if done.returncode else "",
        "seconds": round(done.seconds, 1),
        "peak_gpu_mb": done.peak_gpu_mb,
    }


def export_step(check: Check, run_dir: Path, key: str, base: str, result: dict[str, Any]) -> None:
    folder = check.work / "exports" / key
    args = ["export", str(run_dir), "--merge", "--out", str(folder), "--overwrite"]
    done = check.run(args, f"{key}-export", timeout=60)
    export: dict[str, Any] = {
        "state": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})",
        "seconds": round(done.seconds, 1),
        "reason": done.error_line() if done.returncode else "",
    }
    if done.returncode == 0:  # merged: the base's parameters, no adapter tensors left
        merged, expected, leftover = parameter_count(folder), parameter_count(Path(base)), lora_keys(folder)
        export.update(
            parameters=merged,
            base_parameters=expected,
            lora_tensors=leftover,
            size_mb=round(sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20, 1),
        )
        if merged != expected or leftover:
            export["state"] = "wrong: parameters differ from the base or adapter tensors remain"
    result["export"] = export


# ---- main -------------------------------------------------------------------------------------------------


def run_check(check: Check, rows: list[Row], model_keys: list[str]) -> dict[str, Any]:
    import torch

    started = time.time()
    cuda = torch.cuda.is_available() and not check.dry_run
    unsloth_installed = importlib.util.find_spec("unsloth") is not None
    meta = {
        "dry_run": check.dry_run,
        "steps": check.steps,
        "models": {},
        "command": " ".join(sys.argv),
        "environment": environment(check),
    }
    broken = None if check.dry_run else missing_packages(check)
    if broken:  # every row would fail the same way: stop now, with the error, and keep the device time
        report = {**meta, "rows": [], "stopped": broken, "seconds": round(time.time() - started)}
        write_report(check.out, report)
        return report
    train_file = prepare_data(check)
    meta["models"] = models = build_models(check)
    for model_key in model_keys:
        for row in rows:
            if model_key not in row.models or (row.gpu_only and not cuda):
                continue
            if check.dry_run and model_key == "large" and row.name != "lora-peft":
                continue  # on a CPU the other rows repeat the small model's checks; this one builds the large model
            if check.left() < 20:
                check.results.append({"model": model_key, "row": row.name, "skipped": "the time budget ran out"})
                continue
            print(f"gpu_check: {model_key} {row.name} ...", flush=True)
            result = run_row(check, row, model_key, models[model_key], train_file)
            result["expected"] = expectations(row, cuda, unsloth_installed)
            check.results.append(result)
            write_report(check.out, {**meta, "rows": check.results, "seconds": round(time.time() - started)})
            pack_logs(check.work, check.out)
    for export in check.exports:
        export.join(timeout=max(check.left(), EXPORT_GRACE_S))
    settle(check.results)
    report = {**meta, "rows": check.results, "seconds": round(time.time() - started)}
    write_report(check.out, report)
    pack_logs(check.work, check.out)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="on the CPU with the tiny model: fallbacks and messages")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench" / "out" / "gpu_check"))
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "bench" / "out" / "gpu_check_work",
        help="models, runs and logs (default bench/out/gpu_check_work)",
    )
    parser.add_argument("--steps", type=int, help=f"optimizer steps per row (default {GPU_STEPS}, dry run {DRY_STEPS})")
    parser.add_argument("--only", help="comma-separated rows to run, e.g. qlora4,adamw8 (default all)")
    parser.add_argument("--models", default="small,large", help="comma-separated: small, large")
    parser.add_argument("--budget-s", type=float, default=420, help="start no row after this many seconds")
    parser.add_argument("--doc", type=Path, help="with --from-json: write that run's table into this markdown file")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="the gpu_check.json of one device run, or of several (e.g. one per model) to record as one table",
    )
    args = parser.parse_args(argv)
    if args.dry_run:  # read when CUDA first initializes, which nothing has done yet
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if args.doc or args.from_json:
        write_doc(args.doc, merge_reports([json.loads(f.read_text(encoding="utf-8")) for f in args.from_json]))
        return 0
    rows = [row for row in ROWS if not args.only or row.name in args.only.split(",")]
    check = Check(
        args.out,
        args.work,
        args.dry_run,
        args.steps or (DRY_STEPS if args.dry_run else GPU_STEPS),
        deadline=time.time() + args.budget_s,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    report = run_check(check, rows, args.models.split(","))
    if report.get("stopped"):
        return 3
    return 1 if any(r.get("surprises") or r.get("skipped") for r in report["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
