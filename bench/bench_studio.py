"""What the studio costs while a person only looks at it, measured with a real browser tab open.

The app runs as its own process (`python app.py`) on a data folder holding a few finished runs,
and headless Chromium (Playwright) keeps one tab open on the Train tab. Two windows of --seconds:

  idle      nothing trains: CPU of the app process (psutil: user + system time over the window,
            as a share of one core);
  training  a stand-in trainer writes what a training process writes (a metrics.jsonl line, a
            status.json update and a log line) every --interval seconds, and the tab watches it:
            the app's CPU, and how long each new metrics line takes to show in the tab (a
            MutationObserver in the page notes when the progress line first says "step N /";
            the line's own "time" field says when it was written; same clock).

The stand-in trainer is a separate process, so its work is not counted; a real run would also load
the machine and make the figures noisier without changing what the app does per line.

    git worktree add /tmp/base <commit before the change>
    python bench/bench_studio.py --seconds 60 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import launch_chromium  # noqa: E402
from training.train.config import RunConfig  # noqa: E402
from training.train.presets import get_preset  # noqa: E402
from training.train.runs import create_run  # noqa: E402

FINISHED_RUNS = 6
FINISHED_STEPS = 600  # metrics lines in each finished run

# A stand-in for `python -m training train`: what MetricsCallback and write_status put on disk.
TRAINER = r"""
import json, os, sys, time
run, interval, total = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def status(**fields):
    path = os.path.join(run, "status.json")
    try:
        current = json.load(open(path))
    except FileNotFoundError:
        current = {}
    current.update(fields, updated=time.time())
    with open(path + ".tmp", "w") as handle:
        json.dump(current, handle, indent=2)
    os.replace(path + ".tmp", path)
import psutil
status(state="running", pid=os.getpid(), pid_started=psutil.Process().create_time(), started=time.time())
for step in range(1, total + 1):
    time.sleep(interval)
    record = {"step": step, "epoch": step / total, "loss": 5 - step / total, "eval_loss": None,
              "learning_rate": 1e-3, "grad_norm": 1.0, "tokens_per_second": 2000.0, "elapsed": step * interval,
              "eta": (total - step) * interval, "memory_mb": 900.0, "total_steps": total, "time": time.time()}
    with open(os.path.join(run, "metrics.jsonl"), "a") as handle:
        handle.write(json.dumps(record) + "\n")
    with open(os.path.join(run, "train.log"), "a") as handle:
        handle.write(str({"loss": record["loss"], "learning_rate": 1e-3, "epoch": record["epoch"]}) + "\n")
    status(step=step, total_steps=total)
status(state="completed", ended=time.time())
"""

OBSERVER = r"""() => {
    window.__seen = {};
    const look = () => {
        const match = /step (\d+) \/ /.exec(document.body.innerText);
        if (match && !(match[1] in window.__seen)) window.__seen[match[1]] = Date.now() / 1000;
    };
    new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def make_runs(data: Path) -> None:
    """A few finished runs with full metrics files, as a studio that has been used has."""
    root = data / "runs"
    train_file = data / "datasets" / "sam.jsonl"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    train_file.write_text(
        '{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}]}\n'
    )
    for number in range(FINISHED_RUNS):
        config = RunConfig(
            **{**get_preset("offline-tiny").__dict__, "name": f"finished-{number}", "train_file": str(train_file)}
        )
        run = create_run(config, root)
        lines = [
            json.dumps(
                {
                    "step": step,
                    "loss": 5 - step / FINISHED_STEPS,
                    "learning_rate": 1e-3,
                    "tokens_per_second": 2000.0,
                    "total_steps": FINISHED_STEPS,
                    "time": 0,
                }
            )
            for step in range(1, FINISHED_STEPS + 1)
        ]
        run.metrics_path.write_text("\n".join(lines) + "\n")
        run.status_path.write_text(
            json.dumps(
                {
                    "state": "completed",
                    "step": FINISHED_STEPS,
                    "total_steps": FINISHED_STEPS,
                    "started": 1.0,
                    "ended": 2.0,
                }
            )
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(app_root: Path, data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--data-dir", str(data)],
        cwd=app_root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return app
        if app.poll() is not None:
            sys.exit("the app exited before it listened")
        time.sleep(0.5)
    sys.exit("the app did not listen within 5 minutes")


def cpu_share(process: psutil.Process, seconds: float) -> float:
    """Share of one core the process used over the next `seconds` (children included)."""

    def used() -> float:
        times = process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    before, start = used(), time.perf_counter()
    time.sleep(seconds)
    return (used() - before) / (time.perf_counter() - start)


def measure(app_root: Path, seconds: float, interval: float) -> dict:
    """One app's idle and training windows, each with its own data folder and browser."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as temp, sync_playwright() as playwright:
        data = Path(temp)
        make_runs(data)
        port = free_port()
        app = start_app(app_root, data, port)
        browser = launch_chromium(playwright)
        trainer = None
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="2 · Train").click()
            time.sleep(5)  # let the page settle
            process = psutil.Process(app.pid)
            idle = cpu_share(process, seconds)

            run = create_run(
                RunConfig(
                    **{
                        **get_preset("offline-tiny").__dict__,
                        "name": "watched",
                        "train_file": str(data / "datasets" / "sam.jsonl"),
                    }
                ),
                data / "runs",
            )
            total = int(seconds / interval) + 30
            trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(run.path), str(interval), str(total)])
            # A person who just pressed Start (or reloaded the page) watches the new run.
            page.reload()
            page.get_by_role("tab", name="2 · Train").click()
            page.evaluate(OBSERVER)
            time.sleep(5)
            training = cpu_share(process, seconds)
            seen = page.evaluate("() => window.__seen")
            written = {
                str(record["step"]): record["time"]
                for record in map(json.loads, run.metrics_path.read_text().splitlines())
            }
        finally:
            if trainer is not None:
                trainer.kill()
                trainer.wait()
            browser.close()
            app.terminate()
            app.wait(30)
    delays = sorted(seen[step] - written[step] for step in seen if step in written)
    return {"idle": idle, "training": training, "delays": delays, "written": len(written)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between the stand-in trainer's metrics lines"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (e.g. a worktree of main) measured first, same way"
    )
    args = parser.parse_args()
    roots = ([("baseline", args.baseline)] if args.baseline else []) + [("this checkout", ROOT)]
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    print(
        f"| app | idle, one tab (% of a core, {args.seconds:.0f} s) | training, one line per {args.interval:g} s "
        f"(% of a core) | written -> shown, median s | max s | lines shown / written |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, root in roots:
        result = measure(root, args.seconds, args.interval)
        delays = result["delays"]
        median, worst = (f"{statistics.median(delays):.2f}", f"{max(delays):.2f}") if delays else ("-", "-")
        print(
            f"| {label} ({root}) | {result['idle']:.2%} | {result['training']:.2%} | {median} | {worst} | "
            f"{len(delays)} / {result['written']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
