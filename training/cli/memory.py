"""Memory commands: `memory build DATA.jsonl` (re)indexes a data set's past exchanges for chat."""

from __future__ import annotations

from training.cli.common import print_json


def register(commands) -> None:
    memory = commands.add_parser("memory", help="the index of your past replies that chat --memory recalls from")
    actions = memory.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="(re)build DATA.memory/ from the training rows of DATA.jsonl")
    build.add_argument(
        "data", metavar="DATA.jsonl", help="training rows (prepare's --out); held-out rows are never indexed"
    )
    build.set_defaults(handler=run_memory_build)


def run_memory_build(args) -> None:
    import time

    from training.chat.memory import build_memory_for, open_memory

    started = time.perf_counter()
    folder = build_memory_for(args.data)
    seconds = time.perf_counter() - started
    index = open_memory(folder)
    with_threads = sum(bool(e.thread) for e in index.exchanges)
    print_json(
        {"memory": str(folder), "exchanges": len(index), "with_threads": with_threads, "seconds": round(seconds, 2)}
    )
