"""The command line as a script uses it: output, exit codes, and nothing written on bad input."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "training", *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_detect_names_the_format_of_files_folders_and_zips(tmp_path):
    assert run_cli("detect", SAMPLE).stdout.strip() == "Facebook Messenger / Instagram"
    assert run_cli("detect", ROOT / "samples" / "sam_persona.jsonl").stdout.strip() == "Fine-tuning data set"
    chat = tmp_path / "WhatsApp Chat with Maya.txt"
    chat.write_text("12/03/2024, 18:01 - Maya: hey\n12/03/2024, 18:02 - Sam: yo\n", encoding="utf-8")
    assert run_cli("detect", chat).stdout.strip() == "WhatsApp"


def test_participants_as_table_and_json():
    table = run_cli("participants", SAMPLE)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["339", "Sam", "Rivera"]
    people = json.loads(run_cli("participants", SAMPLE, "--json").stdout)
    assert people[0] == {"name": "Sam Rivera", "messages": 339} and len(people) == 7


def test_prepare_writes_train_and_validation_and_prints_a_summary(tmp_path):
    out = tmp_path / "sam.jsonl"
    done = run_cli(
        "prepare",
        SAMPLE,
        "--me",
        "Sam Rivera",
        "--separator",
        "|",
        "--gap-minutes",
        "30",
        "--context-turns",
        "3",
        "--scrub-pii",
        "--val-fraction",
        "0.2",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["formats"] == {"Facebook Messenger / Instagram": 6}
    assert summary["participants"][0] == {"name": "Sam Rivera", "messages": 339}
    assert summary["dropped"]["media"] == 4 and summary["dropped"]["call"] == 1
    assert summary["train"] + summary["validation"] == summary["examples"] > 200
    assert "pii_replaced" in summary
    train = [json.loads(line) for line in out.read_text().splitlines()]
    held_out = [json.loads(line) for line in (tmp_path / "sam.val.jsonl").read_text().splitlines()]
    assert (len(train), len(held_out)) == (summary["train"], summary["validation"])
    row = train[0]
    assert row["completion"][0]["role"] == "assistant" and row["prompt"][0]["role"] == "system"
    assert len(row["prompt"]) <= 1 + 3  # the system prompt + at most 3 earlier turns
    assert any("|" in r["completion"][0]["content"] for r in train)  # multi-message turns joined by "|"


@pytest.mark.parametrize(
    "name, content, expected",
    [
        (
            "message_1.json",
            b'{"participants": [{"name": "A"}], "messages": [{"sender_name": "A", "timest',
            "message_1.json: the JSON ends early",
        ),
        ("photo.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.json: looks like a binary file"),
        ("empty.txt", b"", "empty.txt: the file is empty"),
        ("rows.jsonl", b'{"prompt": "a", "completion": "b"}\n{"instruction": "x"}\n', "rows.jsonl: line 2"),
        ("settings.json", b'{"theme": "dark"}', "settings.json: JSON in a shape talklike does not know"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, name, content, expected):
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "out" / "data.jsonl"
    done = run_cli("prepare", bad, "--me", "A", "--out", out)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {expected}") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout
    assert not out.exists() and not (tmp_path / "out" / "data.val.jsonl").exists()


def test_hostile_zips_are_refused_without_unpacking(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../outside.txt", "x")
    done = run_cli("prepare", evil, "--me", "A", "--out", tmp_path / "o.jsonl")
    assert done.returncode == 2 and "outside the archive" in done.stderr
    assert not (tmp_path.parent / "outside.txt").exists()


def test_an_unknown_participant_suggests_the_right_name(tmp_path):
    done = run_cli("prepare", SAMPLE, "--me", "Sam Riviera", "--out", tmp_path / "o.jsonl")
    assert done.returncode == 2 and "did you mean 'Sam Rivera'" in done.stderr
    assert not (tmp_path / "o.jsonl").exists()
