"""The data commands and the Data tab's upload never load the training stack (torch, transformers,
TRL, peft): reading an export should not pay seconds of imports it never uses. Each case runs in a
fresh interpreter, so nothing another test imported can hide or cause an import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"
TRAINING_STACK = ["torch", "transformers", "trl", "peft"]

CHECK = """
import json, sys
{run}
print(json.dumps([name for name in {stack} if name in sys.modules]), file=sys.stderr)
"""
CLI = "from training.cli import main\nassert main(sys.argv[1:]) == 0"
UPLOAD = "from components.data_tab import _on_upload\n_on_upload(sys.argv[1:])"


def stack_modules_loaded(run: str, args: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(run=run, stack=TRAINING_STACK), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("command", ["detect", "participants", "prepare", "knowledge"])
def test_data_commands_never_import_the_training_stack(command, tmp_path):
    args = [command, str(SAMPLE)]
    if command == "prepare":
        args += ["--me", "Sam Rivera", "--out", str(tmp_path / "sam.jsonl")]
    if command == "knowledge":  # templates only: --generate loads a model on purpose
        args = [command, str(ROOT / "samples" / "knowledge"), "--out", str(tmp_path / "knowledge.jsonl")]
    assert stack_modules_loaded(CLI, args) == []


def test_the_data_tabs_upload_never_imports_the_training_stack():
    assert stack_modules_loaded(UPLOAD, [str(SAMPLE)]) == []


def test_the_command_line_help_never_imports_the_training_stack():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHECK.format(
                run="from training.cli import build_parser\nbuild_parser().format_help()", stack=TRAINING_STACK
            ),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
