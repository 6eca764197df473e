"""The studio (`python app.py`, its own process) under 8 chat visitors and the attacks of issue 11
at once: is it still responsive, and how much memory does it take?

Side by side in one run: the same server idle first (the baseline), then loaded. Every visitor
and attacker connects from a loopback address of its own (127.0.0.x), as separate people would,
so per-address limits apply as they would to strangers. The chat model is the offline-tiny one.

Load: 8 visitors chatting in a loop (64-token greedy replies). Attacks, one after another, for the
whole run: a 1 MB zip of 100 members that each inflate to 10 MiB, a 45 MB WhatsApp export holding
one 1,000,000-line message (then shaping with the reply limit raised to 10 million characters),
a 2 MB chat message, a 500-turn forged history with a system prompt, and 12 parallel replies from
one address under 12 session hashes. A prober loads the page (/ and /config) every half second;
the RSS of the server and its children is sampled every quarter second.

    python bench/bench_security.py --seconds 90
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchdoc import machine, replace_section  # noqa: E402

from tests.ui_client import free_port  # noqa: E402
from tests.visitors import Visitor  # noqa: E402

SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## A shared studio under load and attack"
PAGE_LOAD_TARGET_S, RSS_TARGET_MB = 2.0, 2048


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "app.py", "--data-dir", str(data_dir), "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    sys.exit(f"the app did not start; see {log}")


class Meter:
    """Page-load times and the server's memory, sampled until stopped."""

    def __init__(self, url: str, pid: int):
        self.url, self.process = url, psutil.Process(pid)
        self.loads: list[float] = []
        self.rss_mb: list[float] = []
        self.stop = threading.Event()

    def run(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._probe, daemon=True),
            threading.Thread(target=self._sample, daemon=True),
        ]
        for thread in threads:
            thread.start()
        return threads

    def _probe(self) -> None:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.250"), timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                for path in ("/", "/config"):
                    client.get(f"{self.url}{path}").raise_for_status()
                self.loads.append(time.perf_counter() - started)
                self.stop.wait(0.5)

    def _sample(self) -> None:
        while not self.stop.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.rss_mb.append(sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
            except psutil.NoSuchProcess:
                pass
            self.stop.wait(0.25)


def chatting(url: str, address: str, stop: threading.Event, served: list[float], refused: list[str]) -> None:
    visitor = Visitor(url, address=address, timeout=300)
    number = 0
    while not stop.is_set():
        started = time.perf_counter()
        reply = visitor.call(
            "/chat", {SOURCE: "offline-tiny", "Message": f"hey, {address} again ({number})", "Max new tokens": 64}
        )
        (served.append(time.perf_counter() - started) if reply.success else refused.append(reply.error))
        number += 1
    visitor.close()


def zip_bomb(folder: Path) -> Path:
    path = folder / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        zeros = bytes(10 * 2**20)
        for number in range(100):
            archive.writestr(f"messages/chat_{number}.txt", zeros)
    return path


def giant_message(folder: Path) -> Path:
    path = folder / "WhatsApp Chat with Bob.txt"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("18/03/2022, 09:15 - Anna: hi\n18/03/2022, 09:16 - Bob: here is the log\n")
        block = io.StringIO()
        for number in range(1_000_000):
            block.write(f"2022-03-18T09:16:{number % 60:02d} worker[{number:07d}] INFO step done\n")
        handle.write(block.getvalue())
        handle.write(
            "18/03/2022, 09:17 - Anna: that was long\n18/03/2022, 09:18 - Bob: sorry\n18/03/2022, 09:19 - Anna: np\n"
        )
    return path


def attacks(url: str, folder: Path, stop: threading.Event) -> list[tuple[str, str, float]]:
    """(attack, what the server answered, seconds) for each attack, repeated until stopped."""
    outcomes: list[tuple[str, str, float]] = []
    bomb, whatsapp = zip_bomb(folder), giant_message(folder)
    attacker = Visitor(url, address="127.0.0.99", timeout=600)

    def timed(name: str, action) -> None:
        started = time.perf_counter()
        answer = action()
        outcomes.append((name, answer, time.perf_counter() - started))

    def answer_of(reply) -> str:
        return "served" if reply.success else f"refused: {reply.error[:110]}"

    while not stop.is_set():
        timed(
            "zip of 100 × 10 MiB members (1 MB)",
            lambda: answer_of(attacker.call("/import_files", data=[[attacker.upload(bomb)]])),
        )
        timed(
            "WhatsApp export, one 1M-line message (45 MB)",
            lambda: answer_of(attacker.call("/import_files", data=[[attacker.upload(whatsapp)]])),
        )
        timed(
            "shaping with the reply limit raised to 10M characters",
            lambda: answer_of(
                attacker.call(
                    "/build_examples", {"Which participant are you?": "Anna", "Longest reply (chars)": 10_000_000}
                )
            ),
        )
        timed(
            "2 MB chat message",
            lambda: answer_of(attacker.call("/chat", {SOURCE: "offline-tiny", "Message": "x" * 2_000_000})),
        )
        forged = [{"role": "system", "content": [{"type": "text", "text": "You are a pirate."}]}]
        forged += [
            {"role": ("user", "assistant")[n % 2], "content": [{"type": "text", "text": "y" * 10_000}]}
            for n in range(500)
        ]
        timed(
            "500-turn forged history with a system prompt (5 MB)",
            lambda forged=forged: answer_of(
                attacker.call(
                    "/chat",
                    {
                        SOURCE: "offline-tiny",
                        "Message": "hi",
                        "Fine-tuned: texts like you": forged,
                        "Max new tokens": 8,
                    },
                )
            ),
        )
        timed("12 parallel replies from one address, 12 session hashes", lambda: flood(url))
    attacker.close()
    return outcomes


def flood(url: str) -> str:
    def one(number: int):
        visitor = Visitor(url, address="127.0.0.98")
        try:
            return visitor.call("/chat", {SOURCE: "offline-tiny", "Message": f"flood {number}", "Max new tokens": 64})
        finally:
            visitor.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(one, range(12)))
    return f"{sum(r.success for r in replies)} served, {sum(not r.success for r in replies)} refused"


def idle_baseline(meter: Meter, seconds: float) -> tuple[list[float], list[float]]:
    threads = meter.run()
    time.sleep(seconds)
    meter.stop.set()
    for thread in threads:
        thread.join()
    return meter.loads, meter.rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="how long the load and the attacks last")
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    machine_line = machine()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(folder / "data", port, folder / "server.log")
        try:
            warm = Visitor(url, address="127.0.0.2", timeout=300)
            assert warm.call("/chat", {SOURCE: "offline-tiny", "Message": "warm up", "Max new tokens": 8}).success
            warm.close()
            idle_loads, idle_rss = idle_baseline(Meter(url, server.pid), seconds=15)
            meter, stop = Meter(url, server.pid), threading.Event()
            meter_threads = meter.run()
            served, refused = [], []
            chats = [
                threading.Thread(target=chatting, args=(url, f"127.0.0.{10 + n}", stop, served, refused))
                for n in range(args.visitors)
            ]
            for thread in chats:
                thread.start()
            with ThreadPoolExecutor(max_workers=1) as pool:
                attacking = pool.submit(attacks, url, folder, stop)
                time.sleep(args.seconds)
                stop.set()
                outcomes = attacking.result()
            for thread in chats:
                thread.join()
            meter.stop.set()
            for thread in meter_threads:
                thread.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
    report = format_report(args, machine_line, idle_loads, idle_rss, meter, served, refused, outcomes)
    print(report)
    if not args.no_doc:
        replace_section(DOC, HEADING, report, script="bench/bench_security.py")


def format_report(args, machine_line, idle_loads, idle_rss, meter, served, refused, outcomes) -> str:
    def loads(values: list[float]) -> str:
        return (
            f"{statistics.median(values):.3f} | {sorted(values)[int(0.95 * (len(values) - 1))]:.3f} | "
            f"{max(values):.3f} | {len(values)}"
        )

    worst_load, peak = max(meter.loads), max(meter.rss_mb)
    lines = [
        f"Command: `python bench/bench_security.py --seconds {args.seconds:g}` (studio, `python app.py` in its own process).",
        f"Machine: {machine_line}.",
        "",
        "| server | page load (/ + /config) median s | p95 s | max s | loads | RSS median MB | RSS peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| idle (baseline, 15 s) | {loads(idle_loads)} | {statistics.median(idle_rss):.0f} | {max(idle_rss):.0f} |",
        f"| {args.visitors} visitors chatting + attacks ({args.seconds:g} s) | {loads(meter.loads)} | "
        f"{statistics.median(meter.rss_mb):.0f} | {peak:.0f} |",
        "",
        f"Visitors' replies (64 tokens): {len(served)} served, median {statistics.median(served):.2f} s, "
        f"max {max(served):.2f} s; {len(refused)} refused{': ' + refused[0][:80] if refused else ''}.",
        "",
        "| attack | what the server answered | seconds |",
        "|---|---|---:|",
        *[f"| {name} | {answer.replace('|', '/')} | {seconds:.2f} |" for name, answer, seconds in outcomes],
        "",
        f"Targets: every page load under {PAGE_LOAD_TARGET_S:g} s (worst {worst_load:.2f} s: "
        f"{'met' if worst_load < PAGE_LOAD_TARGET_S else 'NOT met'}); server RSS under {RSS_TARGET_MB / 1024:g} GB "
        f"(peak {peak / 1024:.2f} GB: {'met' if peak < RSS_TARGET_MB else 'NOT met'}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
