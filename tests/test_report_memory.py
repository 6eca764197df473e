"""The persona report with memory: tuned+memory and base+memory rows, recalled from training rows only."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.export_runs import adapter_run
from tests.report_runs import on_sam_data, sam_examples
from training.chat.decoding import DecodingSettings
from training.chat.memory_prompt import MemorySettings
from training.cli import main
from training.errors import UserError
from training.report.build import ReportOptions, build_report, training_memory
from training.report.heldout import held_out_rows, reply_text
from training.report.render import to_markdown
from training.train.run_record import read_run

QUICK = ReportOptions(
    limit=6, seed=0, decoding=DecodingSettings(do_sample=True, max_new_tokens=8, seed=0), memory=MemorySettings(k=2)
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "causal")


def test_the_report_puts_memory_rows_next_to_tuned_and_base(causal_run):
    report = build_report(causal_run, QUICK)
    plain = build_report(causal_run, dataclasses.replace(QUICK, memory=None))
    assert "memory" not in plain and "With memory" not in to_markdown(plain)
    memory = report["memory"]
    assert memory["k"] == 2 and memory["facts"] == 0 and memory["exchanges"] == 217  # the sample's training rows
    assert {section: [m["key"] for m in metrics] for section, metrics in memory["metrics"].items()} == {
        section: [m["key"] for m in metrics] for section, metrics in report["metrics"].items()
    }
    assert report["metrics"] == plain["metrics"]  # the rows without memory are the plain report's
    chrf = next(m for m in memory["metrics"]["content"] if m["key"] == "chrf")
    assert chrf["real"] is None and 0 <= chrf["tuned"] <= 100
    shown = to_markdown(report)
    assert "| metric | you | tuned | tuned+memory | base | base+memory |" in shown
    table = shown.split("### With memory", 1)[1]
    assert table.count("\n| ") == 1 + sum(len(m) for m in report["metrics"].values())  # the header, then every metric


def test_memory_in_the_report_never_recalls_a_held_out_conversation(causal_run):
    run = read_run(causal_run)
    held = held_out_rows(run.config)
    memory = training_memory(run, held.train, MemorySettings(k=20))
    held_pairs = {(row["prompt"][-1]["content"], reply_text(row)) for row in held.rows}
    assert len(memory.index) == len([row for row in held.train if "prompt" in row])
    for them, _ in held_pairs:  # asked word for word, a held-out exchange still never comes back
        recalled = memory.remember(them).recalled
        assert all((r.exchange.them, r.exchange.you) not in held_pairs for r in recalled)


def test_a_validation_split_keeps_its_rows_out_of_the_reports_memory(causal_run, tmp_path):
    from training.train.config import RunConfig

    config = RunConfig.from_yaml(causal_run / "config.yaml")
    split = dataclasses.replace(config, validation_file="", validation_split=0.2)
    held = held_out_rows(split)
    run = read_run(causal_run)
    memory = training_memory(run, held.train, MemorySettings())
    validation = {(row["prompt"][-1]["content"], reply_text(row)) for row in held.rows}
    assert validation and not validation & {(e.them, e.you) for e in memory.index.exchanges}


def test_report_command_with_memory(causal_run, capsys):
    code = main(
        ["report", str(causal_run), "--limit", "4", "--max-new-tokens", "6", "--memory", "--memory-k", "1", "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["memory"]["k"] == 1
    assert main(["report", str(causal_run), "--memory-k", "1"]) == 2
    assert capsys.readouterr().err.endswith("error: --memory-k: only with --memory\n")
    with pytest.raises(UserError, match="^memory k: 50; expected a whole number from 0 to 20"):
        build_report(causal_run, dataclasses.replace(QUICK, memory=MemorySettings(k=50)))
