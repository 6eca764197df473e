"""Time `python -m training prepare` end to end on a synthetic Messenger export.

Side by side in one run with a floor: a bare `json.load` of every message file plus the mojibake
repair of every string (what any Messenger reader must pay), so the figure says how much talklike
adds on top. Rounds alternate floor and prepare; medians are reported.

With --data-tab, the same export goes through the studio's Data tab too (`python app.py` as its
own process, driven through its API as the browser drives it): the export zipped (stored, once),
uploaded and imported, then Build with the same settings as the CLI, timed per round. (Through the
API, as here, the Memory is indexed on first use; the page indexes it once Build's answer is shown.)

    python bench/bench_prepare.py --messages 1000000 --threads 200 [--data-tab]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the library and tests/ui_client (the Data tab is called by its labels)


def run_child(code_or_args: list[str]) -> tuple[float, float, str]:
    """Run a child process; return (seconds, peak RSS in MB of that child, stdout)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, *code_or_args], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        out = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak (ru_maxrss, KiB on Linux)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            sys.exit(f"failed: {' '.join(code_or_args)}\n{errors.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024, out


# What any Messenger reader must do: parse every file and repair every string's mojibake (as
# training.data.formats.messenger.repair_mojibake does: Latin-1 bytes that are UTF-8).
FLOOR = """
import json, sys
from pathlib import Path
def repair(value):
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value
    if isinstance(value, list):
        return [repair(item) for item in value]
    if isinstance(value, dict):
        return {key: repair(item) for key, item in value.items()}
    return value
n = 0
for path in sorted(Path(sys.argv[1]).rglob("message_*.json")):
    n += len(repair(json.loads(path.read_bytes()))["messages"])
print(n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating floor/prepare runs; medians reported")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--data-tab", action="store_true", help="also time the Data tab's upload and Build")
    args = parser.parse_args()
    work = Path(args.work)
    export = work / f"messenger-{args.messages}-{args.threads}"
    if not export.exists():
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "bench/make_messenger_export.py",
                str(export),
                "--messages",
                str(args.messages),
                "--threads",
                str(args.threads),
            ],
            cwd=ROOT,
            check=True,
        )
        print(f"generated {export} in {time.perf_counter() - t:.1f}s")
    out = work / "prepared.jsonl"
    floors, prepares = [], []
    for _ in range(args.rounds):
        floors.append(run_child(["-c", FLOOR, str(export)]))
        prepares.append(run_child(["-m", "training", "prepare", str(export), "--me", "Sam Rivera", "--out", str(out)]))
    summary = json.loads(prepares[-1][2])
    floor_s, prep_s = statistics.median(r[0] for r in floors), statistics.median(r[0] for r in prepares)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}; {args.rounds} alternating rounds, medians")
    print(f"messages in export (json floor count): {int(floors[0][2]):,}")
    print(
        f"examples written: {summary['examples']:,} (train {summary['train']:,}, validation {summary['validation']:,})"
    )
    print("| step | wall time (s), median | each round (s) | peak RSS (MB), median |")
    print("|---|---:|---|---:|")
    for label, rounds, seconds in (
        ("floor: json.load + mojibake repair of every file", floors, floor_s),
        ("talklike prepare, end to end", prepares, prep_s),
    ):
        each = ", ".join(f"{r[0]:.1f}" for r in rounds)
        print(f"| {label} | {seconds:.1f} | {each} | {statistics.median(r[1] for r in rounds):.0f} |")
    print(f"prepare / floor time ratio: {prep_s / floor_s:.2f}x")
    if args.data_tab:
        uploads, builds = data_tab_rounds(export, args.rounds)
        build_s = statistics.median(builds)
        print(
            f"| Data tab: upload + import (zip over HTTP, not in the CLI's figure) | {statistics.median(uploads):.1f} | "
            f"{', '.join(f'{u:.1f}' for u in uploads)} | |"
        )
        print(f"| Data tab: Build (shape, save, preview) | {build_s:.1f} | {', '.join(f'{b:.1f}' for b in builds)} | |")
        print(f"Data tab Build / CLI prepare: {build_s / prep_s:.2f}x")


def data_tab_rounds(export: Path, rounds: int) -> tuple[list[float], list[float]]:
    """(upload+import seconds, Build seconds) per round, through a studio in its own process."""
    import zipfile

    from bench_studio import free_port, start_app
    from gradio_client import Client, handle_file

    archive = export.with_suffix(".zip")
    if not archive.exists():
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
            for path in sorted(export.rglob("*.json")):
                bundle.write(path, path.relative_to(export))
    uploads, builds = [], []
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        app = start_app(ROOT, Path(data), port)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            build_arguments = None
            for _ in range(rounds):
                start = time.perf_counter()
                client.predict([handle_file(str(archive))], api_name="/import_files")
                uploads.append(time.perf_counter() - start)
                if build_arguments is None:
                    from tests.ui_client import arguments

                    settings = {
                        "Which participant are you?": "Sam Rivera",
                        "Preview with the tokenizer of": "offline-tiny",
                    }
                    build_arguments = arguments(client, "/build_examples", **settings)
                start = time.perf_counter()
                client.predict(*build_arguments, api_name="/build_examples")
                builds.append(time.perf_counter() - start)
        finally:
            app.terminate()
            app.wait(30)
    return uploads, builds


if __name__ == "__main__":
    main()
