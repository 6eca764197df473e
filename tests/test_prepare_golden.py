"""`prepare` writes exactly the bytes it wrote before the speed work (issue 15).

The golden files under tests/fixtures/prepare_golden/ were written by `python -m training
prepare` at main 17e166e, before any change for speed. The input is a small synthetic Messenger
export (bench/make_messenger_export.py, 2,000 messages in 10 threads, seed 7, committed as a zip so
a change to the generator cannot move it) and the bundled sample. Any change to parsing, mojibake
repair, filtering, persona shaping, the split or the JSON writing shows up here as a diff.

Regenerate only for an intended change of output: `python tests/test_prepare_golden.py`.
"""

from __future__ import annotations

import difflib
import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "prepare_golden"
EXPORT_ZIP = GOLDEN / "messenger_2000.zip"
SAMPLE_ZIP = ROOT / "samples" / "sam_messenger_export.zip"
OUTPUTS = ("out.jsonl", "out.val.jsonl", "out.persona.json", "summary.json")

CASES = {
    "defaults": (EXPORT_ZIP, []),
    "options": (
        EXPORT_ZIP,
        [
            "--separator",
            "|",
            "--gap-minutes",
            "20",
            "--context-turns",
            "3",
            "--system-prompt",
            "Texting as {me}.",
            "--no-name-prefix",
            "--exclude-thread",
            "Kemi Eze",
            "--since",
            "2025-05-20",
            "--min-chars",
            "4",
            "--max-chars",
            "120",
            "--no-dedup",
            "--scrub-pii",
            "--val-fraction",
            "0.3",
        ],
    ),
    "no-groups": (EXPORT_ZIP, ["--no-groups", "--system-prompt", "", "--until", "2025-06-25"]),
    "sample": (SAMPLE_ZIP, []),
}


def run_prepare(source: Path, options: list[str], out_dir: Path) -> dict[str, bytes]:
    """Run the CLI as a user does; return each output file's bytes (summary without paths)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "prepare",
            str(source),
            "--me",
            "Sam Rivera",
            "--out",
            str(out_dir / "out.jsonl"),
            *options,
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    summary = json.loads(done.stdout)
    for key in ("train_file", "validation_file", "manifest", "memory"):  # paths, which differ run to run
        summary.pop(key)
    assert (out_dir / "out.memory").is_dir()  # the memory index (issue 14) is built beside the data set
    files = {name: (out_dir / name).read_bytes() for name in OUTPUTS[:3]}
    files["summary.json"] = json.dumps(summary, ensure_ascii=False, indent=2).encode()
    return files


def golden(case: str, name: str) -> bytes:
    return gzip.decompress((GOLDEN / case / f"{name}.gz").read_bytes())


def first_difference(expected: bytes, actual: bytes) -> str:
    diff = difflib.unified_diff(
        expected.decode().splitlines(), actual.decode().splitlines(), "golden", "now", n=0, lineterm=""
    )
    return "\n".join(line[:300] for _, line in zip(range(12), diff))


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepare_output_is_byte_identical_to_golden(case, tmp_path):
    source, options = CASES[case]
    files = run_prepare(source, options, tmp_path)
    for name in OUTPUTS:
        expected = golden(case, name)
        assert files[name] == expected, f"{case}/{name} changed:\n" + first_difference(expected, files[name])


def test_folder_and_zip_give_the_same_rows(tmp_path):
    """The benchmark reads an unpacked folder; the golden files come from the zip. Thread ids
    come from paths, so the validation split differs; the examples themselves do not."""
    folder = tmp_path / "export"
    with zipfile.ZipFile(EXPORT_ZIP) as archive:
        archive.extractall(folder)
    files = run_prepare(folder, [], tmp_path / "out")
    rows = (files["out.jsonl"] + files["out.val.jsonl"]).splitlines()
    expected = (golden("defaults", "out.jsonl") + golden("defaults", "out.val.jsonl")).splitlines()
    assert sorted(rows) == sorted(expected)


def regenerate(tmp: Path) -> None:
    for case, (source, options) in CASES.items():
        files = run_prepare(source, options, tmp / case)
        (GOLDEN / case).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            # mtime=0: the same bytes give the same .gz, so a regeneration shows no false change.
            (GOLDEN / case / f"{name}.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        print(case, {name: len(data) for name, data in files.items()})


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        regenerate(Path(tmp))
