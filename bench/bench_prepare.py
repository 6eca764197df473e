"""Time `python -m training prepare` end to end on a synthetic Messenger export.

Side by side in one run with a floor: a bare `json.load` of every message file (what any
parser must pay), so the figure says how much talklike adds on top of reading the JSON.

    python bench/bench_prepare.py --messages 1000000 --threads 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_child(code_or_args: list[str]) -> tuple[float, float, str]:
    """Run a child process; return (seconds, peak RSS in MB of that child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *code_or_args], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(code_or_args)}\n{done.stderr}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far, in KiB on Linux; the
    # children run one at a time, largest last, so a rise means this child's peak.
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return seconds, peak, done.stdout


FLOOR = """
import json, sys
from pathlib import Path
n = 0
for path in sorted(Path(sys.argv[1]).rglob("message_*.json")):
    n += len(json.loads(path.read_bytes())["messages"])
print(n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--work", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    work = Path(args.work)
    export = work / f"messenger-{args.messages}-{args.threads}"
    if not export.exists():
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "bench/make_messenger_export.py", str(export), "--messages", str(args.messages), "--threads", str(args.threads)],
            cwd=ROOT, check=True,
        )
        print(f"generated {export} in {time.perf_counter() - t:.1f}s")
    floor_s, floor_mb, floor_out = run_child(["-c", FLOOR, str(export)])
    out = work / "prepared.jsonl"
    prep_s, prep_mb, prep_out = run_child(
        ["-m", "training", "prepare", str(export), "--me", "Sam Rivera", "--out", str(out)]
    )
    summary = json.loads(prep_out)
    print(f"messages in export (json floor count): {int(floor_out):,}")
    print(f"examples written: {summary['examples']:,} (train {summary['train']:,}, validation {summary['validation']:,})")
    print("| step | wall time (s) | peak RSS (MB) |")
    print("|---|---|---|")
    print(f"| floor: json.load of every file | {floor_s:.1f} | {floor_mb:.0f} |")
    print(f"| talklike prepare, end to end | {prep_s:.1f} | {prep_mb:.0f} |")
    print(f"prepare / floor time ratio: {prep_s / floor_s:.2f}x")


if __name__ == "__main__":
    main()
