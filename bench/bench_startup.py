"""How long a user waits for `python -m training --help` (and a data command) before anything happens.

Each command runs as a fresh process, alternating with the floor (`python -c pass`: the interpreter
alone) and, for scale, `python -c "import torch"` (what the CLI paid when its parser imported the
training stack). Medians of --reps runs; wall time of the whole process.

    python bench/bench_startup.py --reps 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sam_messenger_export.zip"

COMMANDS = {
    "floor: python -c pass": ["-c", "pass"],
    "python -m training --help": ["-m", "training", "--help"],
    "python -m training detect samples/sam_messenger_export.zip": ["-m", "training", "detect", str(SAMPLE)],
    "for scale: python -c 'import torch'": ["-c", "import torch"],
}


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache once
        wall(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.reps):
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
    print("| command | median wall s | min | max |")
    print("|---|---:|---:|---:|")
    for name, runs in times.items():
        print(f"| `{name}` | {statistics.median(runs):.3f} | {min(runs):.3f} | {max(runs):.3f} |")


if __name__ == "__main__":
    main()
