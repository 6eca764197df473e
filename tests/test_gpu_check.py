"""bench/gpu_check.py cannot rot between GPU runs: its dry run goes through every row on the CPU,
where each must fall back or refuse with the message a user sees, and its measuring runner and
report work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402  (bench/ is a folder of scripts, not a package)
import gpu_rows  # noqa: E402
from gpu_steps import GpuMemory, child_environment, run_measured  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    with pytest.MonkeyPatch.context() as patch:  # main() hides CUDA and points the data folder at its work dir
        patch.setenv("CUDA_VISIBLE_DEVICES", "")
        patch.setenv("TALKLIKE_DATA_DIR", str(out / "data"))
        code = gpu_check.main(["--dry-run", "--out", str(out / "out"), "--work", str(out / "work")])
    return code, json.loads((out / "out" / "gpu_check.json").read_text()), (out / "out" / "gpu_check.md").read_text()


def rows_by_name(report) -> dict[tuple[str, str], dict]:
    return {(row["model"], row["row"]): row for row in report["rows"]}


def test_dry_run_trains_falls_back_and_refuses_as_a_user_would_see(dry_run):
    code, report, _ = dry_run
    assert code == 0, [row.get("surprises") for row in report["rows"]]
    rows = rows_by_name(report)
    assert set(rows) == {
        ("small", "lora-peft"),
        ("small", "lora-unsloth"),
        ("small", "qlora4"),
        ("small", "adamw8"),
        ("large", "lora-peft"),
    }
    plain, fallback = rows[("small", "lora-peft")]["train"], rows[("small", "lora-unsloth")]["train"]
    assert plain["state"] == fallback["state"] == "completed" and plain["loss_last"] is not None
    assert fallback["backend"] == "transformers+peft" and fallback["backend_note"] == "no CUDA GPU"
    assert rows[("small", "qlora4")]["train"]["reason"].startswith("method qlora: needs a CUDA GPU with bitsandbytes")
    assert rows[("small", "adamw8")]["train"]["reason"].startswith("optimizer adamw_8bit: needs a CUDA GPU")
    assert rows[("small", "lora-unsloth")]["chat"]["reason"].startswith(
        "load_in 8bit: 8-bit and 4-bit loading need a CUDA GPU"
    )
    assert rows[("small", "lora-peft")]["chat"]["state"] == "ok"
    assert all(row["train"]["predicted_gb"] > 0 for row in rows.values() if row["train"]["state"] == "completed")


def test_merged_exports_hold_the_base_parameters_and_no_adapter(dry_run):
    _, report, _ = dry_run
    exported = [row["export"] for row in report["rows"] if "export" in row]
    assert len(exported) == 3
    for export in exported:
        assert (
            export["state"] == "ok"
            and export["parameters"] == export["base_parameters"]
            and export["lora_tensors"] == 0
        )


def test_the_report_is_a_table_with_the_verdict_and_goes_into_the_benchmarks_doc(dry_run, tmp_path):
    _, report, text = dry_run
    assert "| model | row | backend | train |" in text and "Every row did what a user should see." in text
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Training throughput\n\nkept\n")
    json_file = tmp_path / "gpu_check.json"
    json_file.write_text(json.dumps(report))
    assert gpu_check.main(["--doc", str(doc), "--from-json", str(json_file)]) == 0
    written = doc.read_text()
    assert "## GPU check" in written and "kept" in written and "| small | qlora4 |" in written


def test_a_gpu_row_that_does_not_reach_unsloth_is_reported():
    row = next(r for r in gpu_rows.ROWS if r.name == "lora-unsloth")
    expected = gpu_rows.expectations(row, cuda=True, unsloth_installed=True)
    fell_back = {
        "train": {"state": "completed", "backend": "transformers+peft", "backend_note": "Unsloth could not load x"},
        "chat": {"state": "ok"},
        "export": {"state": "ok"},
    }
    assert gpu_rows.surprises(fell_back, expected) == ["backend: expected 'unsloth', got 'transformers+peft'"]
    hidden = next(r for r in gpu_rows.ROWS if r.name == "unsloth-hidden")
    assert gpu_rows.expectations(hidden, cuda=True, unsloth_installed=True)["note"] == "Unsloth cannot be imported"


def test_the_gpu_runner_measures_a_real_cli_process(tmp_path):
    # A command that imports torch and builds a model: long enough for the 0.1 s memory sampler
    # (detect ends in 0.2 s, before a sample sees more than the interpreter starting).
    env = child_environment(tmp_path / "data", dry_run=True)
    done = run_measured(
        ["tiny-model", str(tmp_path / "tiny"), "--arch", "llama"], tmp_path / "tiny.log", GpuMemory(), env, timeout=120
    )
    assert done.returncode == 0 and (tmp_path / "tiny" / "config.json").exists() and done.peak_rss_mb > 100
    assert (tmp_path / "tiny.out").read_text() == done.stdout


def test_device_runs_split_by_model_are_recorded_as_one_table():
    """A lease too short for one run: the small model in one call, the large in the next."""
    meta = {"dry_run": False, "steps": 20, "environment": {}}
    trained = {"state": "completed", "backend": "transformers+peft"}
    first = {
        **meta,
        "command": "gpu_check.py",
        "seconds": 384,
        "models": {"small": {"about": "s"}},
        "rows": [
            {
                "model": "small",
                "row": "adamw8",
                "train": trained,
                "export": {"state": "running"},
                "expected": {"train": "completed", "export": "ok"},
            },
            {"model": "large", "row": "lora-peft", "skipped": "the time budget ran out"},
            {"model": "large", "row": "adamw8", "skipped": "the time budget ran out"},
        ],
    }
    second = {
        **meta,
        "command": "gpu_check.py --models large",
        "seconds": 240,
        "models": {"large": {"about": "l"}},
        "rows": [
            {"model": "large", "row": "lora-peft", "train": trained},
            {"model": "large", "row": "adamw8", "skipped": "the time budget ran out"},
        ],
    }
    merged = gpu_check.merge_reports([first, second])
    assert [(r["model"], r["row"], "skipped" in r) for r in merged["rows"]] == [
        ("small", "adamw8", False),
        ("large", "lora-peft", False),
        ("large", "adamw8", True),
    ]
    assert merged["rows"][0]["export"]["state"] == "not finished"  # its merge was cut off, not still "running"
    assert merged["rows"][0]["surprises"] == [
        "export: expected 'ok', got 'not finished still merging when the time budget ran out'"
    ]
    assert (merged["seconds"], set(merged["models"])) == (624, {"small", "large"})
    assert merged["command"] == "gpu_check.py`, then `gpu_check.py --models large"
