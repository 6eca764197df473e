"""Memory: index build time for a big export and recall latency per message, side by side with the textbook way.

    python bench/bench_memory.py --messages 1000000 --threads 200 [--latency-rows 100000] [--queries 200]

On a synthetic Messenger export (bench/make_messenger_export.py, generated once under bench/out/):
`prepare` in this process (not timed here: bench_prepare.py times it), then
- build: training/chat/memory.py's build_memory (hash the other person's turns, TF-IDF, save the
  folder), and the whole first use after `prepare` (build_if_pending: read X.jsonl back, then the
  same), against scikit-learn's TfidfVectorizer.fit_transform of the same keys (vocabulary
  built, nothing saved), the way the docs show it;
- recall: the top 4 exchanges for held-out messages (the validation rows' last turn, never indexed)
  over an index of --latency-rows exchanges and over the whole index, against the textbook
  cosine_similarity(vectorizer.transform([message]), matrix) followed by a sort.
scikit-learn is imported before any timing (its import costs 1-4 s once per process).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def export_folder(work: Path, messages: int, threads: int) -> Path:
    folder = work / f"messenger-{messages}-{threads}"
    if not folder.exists():
        subprocess.run(
            [
                sys.executable,
                "bench/make_messenger_export.py",
                str(folder),
                "--messages",
                str(messages),
                "--threads",
                str(threads),
            ],
            cwd=ROOT,
            check=True,
        )
    return folder


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def latencies_ms(recall, queries: list[str]) -> list[float]:
    found = []
    for query in queries:
        started = time.perf_counter()
        recall(query)
        found.append((time.perf_counter() - started) * 1000)
    return found


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{statistics.median(ordered):.1f} | {p95:.1f} | {statistics.fmean(ordered):.1f}"


def textbook(keys: list[str]):
    """TfidfVectorizer + cosine_similarity + argsort: the way scikit-learn's docs put it together."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), sublinear_tf=True, dtype=np.float32)
    matrix = vectorizer.fit_transform(keys)

    def recall(message: str, k: int = 4):
        scores = cosine_similarity(vectorizer.transform([message]), matrix).ravel()
        return np.argsort(-scores)[:k]

    return recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--latency-rows", type=int, default=100_000, help="exchanges in the index recall is timed on")
    parser.add_argument("--queries", type=int, default=200, help="held-out messages recalled for")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()

    import_seconds, _ = timed(__import__, "sklearn.feature_extraction.text")
    from training.chat.memory import (
        build_if_pending,
        build_memory,
        exchanges_from_rows,
        index_in_memory,
        memory_path,
        open_memory,
        remember_prepared,
    )
    from training.data.formats import load
    from training.data.persona import ShapingOptions, prepare, save

    export = export_folder(Path(args.work), args.messages, args.threads)
    prepare_seconds, prepared = timed(lambda: prepare(load([export]), ShapingOptions(me="Sam Rivera")))
    exchanges = exchanges_from_rows(prepared.train, prepared.train_sources)
    keys = [e.them for e in exchanges]
    print(
        f"export: {args.messages:,} messages; prepare (in process, untimed elsewhere): {prepare_seconds:.1f} s; "
        f"{len(prepared.train):,} training rows -> {len(exchanges):,} exchanges ({len(set(keys)):,} distinct keys); "
        f"scikit-learn import {import_seconds:.1f} s"
    )

    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        train_file, _ = save(prepared, Path(folder) / "big.jsonl")
        record_seconds, _ = timed(remember_prepared, prepared, train_file)
        first_use_seconds, _ = timed(build_if_pending, memory_path(train_file))
        build_seconds, memory_folder = timed(build_memory, exchanges, memory_path(train_file))
        size_mb = sum(p.stat().st_size for p in memory_folder.iterdir()) / 2**20
        open_seconds, index = timed(open_memory, train_file)
        baseline_build, baseline_recall = timed(textbook, keys)
        print("\n| build, whole export | seconds |")
        print("|---|---:|")
        print(f"| talklike `build_memory` (hash, TF-IDF, save {size_mb:.0f} MB) | {build_seconds:.1f} |")
        print(f"| textbook `TfidfVectorizer.fit_transform` (in memory, not saved) | {baseline_build:.1f} |")
        print(
            f"| talklike `remember_prepared` (what `prepare` itself records: each row's thread) | {record_seconds:.1f} |"
        )
        print(
            f"| talklike first use after `prepare` (`build_if_pending`: read X.jsonl, then build) | {first_use_seconds:.1f} |"
        )
        print(f"| talklike `open_memory` (read the folder back) | {open_seconds:.1f} |")

        held_out = [row["prompt"][-1]["content"] for row in prepared.validation if "prompt" in row]
        step = max(1, len(held_out) // args.queries)
        queries = held_out[::step][: args.queries]
        smaller = index_in_memory(exchanges[: args.latency_rows])
        smaller_textbook = textbook(keys[: args.latency_rows])
        print(f"\nrecall k=4 for {len(queries)} held-out messages; milliseconds per message")
        print("\n| index | method | median | p95 | mean |")
        print("|---|---|---:|---:|---:|")
        for size, ours, theirs in ((len(smaller), smaller, smaller_textbook), (len(index), index, baseline_recall)):
            ours.recall(queries[0])  # first call warms numpy/scipy paths
            print(
                f"| {size:,} | talklike `recall` | {summary(latencies_ms(lambda q, i=ours: i.recall(q, 4), queries))} |"
            )
            print(f"| {size:,} | textbook cosine_similarity + argsort | {summary(latencies_ms(theirs, queries))} |")


if __name__ == "__main__":
    main()
