"""The GPU check's report: each row's surprises, several device runs merged into one report,
gpu_check.json (everything) and gpu_check.md (the table), and the section of docs/benchmarks.md a
recorded run goes into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gpu_rows
from benchdoc import replace_section

HEADING = "## GPU check"
TARGETS = "Targets (issue 18): Unsloth >= 1.5x the tokens/s of transformers+peft at <= 70% of its peak memory; estimator within 25% of the measured peak in every row."


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Rewritten after every row, so a run cut short still brings back what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = markdown(report)
    (out / "gpu_check.md").write_text(text + "\n", encoding="utf-8")
    print(text, flush=True)


def write_doc(doc: Path, report: dict[str, Any]) -> None:
    replace_section(doc, HEADING, markdown(report), script="bench/gpu_check.py")


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    gpu = env.get("gpu") or {}
    packages = ", ".join(f"{name} {version}" for name, version in env["packages"].items() if version)
    where = f"{gpu['name']} ({gpu['memory_gb']} GB)" if gpu and not report["dry_run"] else "CPU"
    where += " (dry run)" if report["dry_run"] else ""
    lines = [
        f"**{where}**, {env['cpu_count']} CPU cores; Python {env['python']}, CUDA {env['cuda']}; {packages}.",
        f"{report['steps']} steps per row of the persona-small recipe on the bundled sample; "
        f"{report['seconds']} s in all. Command: `{report['command']}`",
        "",
        "Models: " + "; ".join(f"**{key}** = {model['about']}" for key, model in report["models"].items()) + ".",
        "",
        "| model | row | backend | train | real tok/s | loss first → last | peak memory | torch peak | estimate "
        "| estimate / measured | chat | export |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    if report.get("stopped"):
        lines.append(f"| | | | stopped before the first row: {report['stopped']} | | | | | | | | |")
    lines += [_row_line(row, report["dry_run"]) for row in report["rows"]]
    lines += [
        "",
        "Peak memory: of the whole training process, GPU memory through NVML (what nvidia-smi shows, "
        "CUDA context included) on a GPU, resident memory on a CPU; torch peak: max_memory_allocated "
        "(GPU) or the process's RSS as logged in metrics.jsonl.",
        "",
        *_summary(report),
    ]
    return "\n".join(lines)


def _row_line(row: dict[str, Any], dry_run: bool) -> str:
    if "skipped" in row:
        return f"| {row['model']} | {row['row']} | | skipped: {row['skipped']} | | | | | | | | |"
    train = row["train"]
    measured_mb = train.get("peak_rss_mb") if dry_run or train.get("peak_gpu_mb") is None else train.get("peak_gpu_mb")
    predicted = train.get("predicted_gb")
    ratio = f"{predicted * 1024 / measured_mb:.2f}" if predicted and measured_mb else ""
    state = train["state"] if train["state"] == "completed" else f"{train['state']}: {train['reason']}"
    backend = train.get("backend") or ""
    if train.get("backend_note"):
        backend += f" ({train['backend_note']})"
    losses = f"{_num(train.get('loss_first'))} → {_num(train.get('loss_last'))}" if train.get("loss_first") else ""
    return (
        f"| {row['model']} | {row['row']} | {backend} | {state} | {_num(train.get('tokens_per_s'), 0)} | {losses} "
        f"| {_mb(measured_mb)} | {_mb(train.get('torch_peak_mb'))} | {_mb(predicted * 1024 if predicted else None)} "
        f"| {ratio} | {_step(row.get('chat'), chat=True)} | {_step(row.get('export'))} |"
    )


def _step(step: dict[str, Any] | None, chat: bool = False) -> str:
    if step is None:
        return ""
    if step["state"] != "ok":
        return f"{step['state']}: {step.get('reason', '')}".replace("|", "/")
    if chat:
        reply = step["reply"].replace("|", "/").replace("\n", " ")[:40]
        return f"{step['load_in']}, {step['seconds']} s, peak {_mb(step.get('peak_gpu_mb'))}: “{reply}”"
    return f"{step['seconds']} s, {step.get('size_mb', '?')} MB"


def _summary(report: dict[str, Any]) -> list[str]:
    rows = [row for row in report["rows"] if "train" in row]
    lines = [TARGETS]
    for model in dict.fromkeys(row["model"] for row in rows):
        peft = _completed(rows, model, "lora-peft")
        fast = _completed(rows, model, "lora-unsloth")
        if peft and fast and fast["backend"] == "unsloth" and peft.get("tokens_per_s") and fast.get("tokens_per_s"):
            speed = fast["tokens_per_s"] / peft["tokens_per_s"]
            memory = (fast["peak_gpu_mb"] or 0) / max(peft["peak_gpu_mb"] or 1, 1)
            lines.append(
                f"- {model}: Unsloth {speed:.2f}x the tokens/s of transformers+peft at {memory:.0%} of its peak memory."
            )
    ratios = []
    for row in rows:
        train = row["train"]
        measured = train.get("peak_gpu_mb") if not report["dry_run"] else train.get("peak_rss_mb")
        if train.get("predicted_gb") and measured:
            ratios.append(train["predicted_gb"] * 1024 / measured)
    if ratios:
        within = sum(0.75 <= r <= 1.25 for r in ratios)
        lines.append(
            f"- Estimator within 25% of the measured peak in {within} of {len(ratios)} rows "
            f"(estimate / measured from {min(ratios):.2f} to {max(ratios):.2f})."
        )
    surprises = [f"{row['model']} {row['row']}: {text}" for row in report["rows"] for text in row.get("surprises", [])]
    lines.append(
        "- Every row did what a user should see."
        if not surprises and all("surprises" in r for r in rows)
        else "- Not as expected:" + "".join(f"\n  - {text}" for text in surprises)
    )
    return lines


def _completed(rows: list[dict[str, Any]], model: str, name: str) -> dict[str, Any] | None:
    found = [row["train"] for row in rows if row["model"] == model and row["row"] == name]
    return found[0] if found and found[0]["state"] == "completed" else None


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _mb(value: float | None) -> str:
    if not value:
        return ""
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def settle(rows: list[dict[str, Any]]) -> None:
    """Exports still running when the run ended say so; each row's surprises, against its expectations."""
    for row in rows:
        if row.get("export", {}).get("state") == "running":
            row["export"] = {"state": "not finished", "reason": "still merging when the time budget ran out"}
        if "expected" in row:
            row["surprises"] = gpu_rows.surprises(row, row["expected"])


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several device runs as one report: every row measured in any of them (a row a run skipped for
    time is dropped where another run measured it), each run's command, their time added."""
    rows = [row for report in reports for row in report["rows"] if "skipped" not in row]
    skipped = {(row["model"], row["row"]): row for report in reports for row in report["rows"] if "skipped" in row}
    rows += [row for key, row in skipped.items() if key not in {(r["model"], r["row"]) for r in rows}]
    settle(rows)
    return {
        **reports[0],
        "rows": rows,
        "models": {k: v for r in reports for k, v in r["models"].items()},
        "command": "`, then `".join(r["command"] for r in reports),
        "seconds": sum(r["seconds"] for r in reports),
    }
