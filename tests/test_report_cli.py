"""`python -m training report` and batch `chat --prompts` as a script uses them: output, exit codes, files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.export_runs import adapter_run, full_run
from tests.report_runs import on_sam_data, sam_examples
from tests.test_cli import ROOT
from training.train.config import RunConfig

HISTORIES = [
    {"id": "a", "messages": [{"role": "user", "content": "hey are you coming tonight?"}]},
    {
        "id": "b",
        "messages": [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "what's up"},
        ],
    },
    {"messages": [{"role": "user", "content": "lol did you see that"}]},
]


def run_cli(*args):
    # Each call starts Python, torch and a model: minutes on a busy 2-core runner, hence the timeout.
    return subprocess.run(
        [sys.executable, "-m", "training", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "cli-run")


def write_jsonl(path, rows) -> None:
    path.write_text(
        "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), encoding="utf-8"
    )


def test_report_prints_json_and_sentences(run):
    done = run_cli("report", run, "--json", "--limit", "2", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["data"]["rows"] == 2 and report["decoding"]["max_new_tokens"] == 4
    assert report["seed"] == 0 and report["decoding"]["seed"] == 0 and "examples" not in report
    assert "100%" in done.stderr  # the progress line reached the end
    text = run_cli("report", run, "--limit", "2", "--max-new-tokens", "4", "--greedy", "--include-examples")
    assert text.returncode == 0, text.stderr
    assert "Person-specific gap" in text.stdout and "replies greedy" in text.stdout
    assert "### Side by side" in text.stdout


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"validation_file": ""}, "error: cli-run: trained without held-out data"),
        ({"validation_file": "/nowhere/val.jsonl"}, "error: validation_file: /nowhere/val.jsonl does not exist"),
    ],
)
def test_report_on_a_run_without_held_out_data_is_one_line_exit_2(run, tmp_path, change, expected):
    broken = tmp_path / "cli-run"
    broken.mkdir()
    config = RunConfig.from_yaml(run / "config.yaml").with_overrides(**change)
    config.save(broken / "config.yaml")
    (broken / "final").symlink_to(run / "final")
    done = run_cli("report", broken)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(expected), done.stderr
    assert "Traceback" not in done.stderr and not (broken / "report.json").exists()


def test_report_names_an_unknown_run():
    done = run_cli("report", "no-such-run")
    assert done.returncode == 2 and done.stderr.startswith("error: no-such-run: not a run folder (no config.yaml)")


def test_batch_chat_answers_every_history_once_loaded(run, tmp_path):
    prompts, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(prompts, HISTORIES)
    done = run_cli("chat", run, "--prompts", prompts, "--out", out, "--greedy", "--max-new-tokens", "8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and "3/3 replies" in done.stderr
    answered = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in row.items() if k != "reply"} for row in answered] == HISTORIES
    assert all(isinstance(row["reply"], str) for row in answered)
    base_out = tmp_path / "base.jsonl"
    base = run_cli("chat", run, "--prompts", prompts, "--out", base_out, "--greedy", "--max-new-tokens", "8", "--base")
    assert base.returncode == 0, base.stderr
    base_replies = [json.loads(line)["reply"] for line in base_out.read_text().splitlines()]
    assert base_replies != [row["reply"] for row in answered]  # the adapter was off


@pytest.mark.parametrize(
    "lines, expected",
    [
        (
            [HISTORIES[0], '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'],
            "in.jsonl line 2: the last message must be the user's",
        ),
        ([HISTORIES[0], "", '{"messages": [{"role": "user"'], "in.jsonl line 3: not valid JSON"),
        (['{"prompt": "hi"}'], 'in.jsonl line 1: expected {"messages"'),
        (['{"messages": [{"role": "bot", "content": "hi"}]}'], "in.jsonl line 1: message 1: expected"),
    ],
)
def test_batch_chat_bad_line_is_named_and_nothing_is_written(run, tmp_path, lines, expected):
    prompts, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(prompts, lines)
    done = run_cli("chat", run, "--prompts", prompts, "--out", out)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {expected}"), done.stderr
    assert done.stderr.count("\n") == 1 and not out.exists()


def test_batch_chat_flags_are_checked(tmp_path, tmp_path_factory):
    prompts = tmp_path / "in.jsonl"
    write_jsonl(prompts, HISTORIES)
    no_out = run_cli("chat", "offline-tiny", "--prompts", prompts)
    assert no_out.returncode == 2 and "--prompts and --out: give both" in no_out.stderr
    both = run_cli("chat", "offline-tiny", "--prompt", "hi", "--prompts", prompts, "--out", tmp_path / "o.jsonl")
    assert both.returncode == 2 and "give --prompt TEXT or --prompts" in both.stderr
    full = full_run(tmp_path_factory).path
    no_adapter = run_cli("chat", full, "--prompts", prompts, "--out", tmp_path / "o.jsonl", "--base")
    assert no_adapter.returncode == 2 and "--base: full-run has no adapter" in no_adapter.stderr
    assert not (tmp_path / "o.jsonl").exists()
