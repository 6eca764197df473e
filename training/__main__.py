"""talklike's command line: `python -m training COMMAND ...` (see README for every command)."""

from __future__ import annotations

import argparse
import json
import sys
from .errors import UserError


def _unescape(value: str) -> str:
    # Lets `--separator '\n'` mean a newline, as people type it in a shell.
    return value.encode("utf-8").decode("unicode_escape") if "\\" in value else value


def _date(value: str) -> float | None:
    from .persona import parse_day

    try:
        return parse_day(value, "date")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def cmd_detect(args) -> None:
    from .formats import detect_file

    print(detect_file(args.file))


def cmd_participants(args) -> None:
    from .formats import load
    from .persona import participants

    people = participants(load(args.inputs))
    if args.json:
        _print_json([{"name": name, "messages": count} for name, count in people])
    else:
        for name, count in people:
            print(f"{count:>8}  {name}")


def cmd_prepare(args) -> None:
    from .formats import ImportOptions, load
    from .persona import DEFAULT_SYSTEM_PROMPT, ShapingOptions, prepare, save

    options = ShapingOptions(
        me=args.me,
        separator=_unescape(args.separator),
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
    _print_json({**prepared.summary, "train_file": str(train_path), "validation_file": str(val_path)})


def cmd_tiny_model(args) -> None:
    from .tiny import build_tiny_model

    print(build_tiny_model(args.out, arch=args.arch, seed=args.seed))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="print the detected format of a file, folder or zip")
    detect.add_argument("file")
    detect.set_defaults(handler=cmd_detect)

    people = commands.add_parser("participants", help="list who wrote messages, most active first")
    people.add_argument("inputs", nargs="+", metavar="INPUT")
    people.add_argument("--json", action="store_true", help="print JSON instead of a table")
    people.set_defaults(handler=cmd_participants)

    prep = commands.add_parser("prepare", help="turn exports into prompt/completion JSONL")
    prep.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or zips")
    prep.add_argument("--me", required=True, help="your name as it appears in the export")
    prep.add_argument("--out", required=True, help="training JSONL; validation goes to <name>.val.jsonl")
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
    prep.set_defaults(handler=cmd_prepare)

    tiny = commands.add_parser("tiny-model", help="build a small random model + tokenizer, offline")
    tiny.add_argument("out")
    tiny.add_argument("--arch", choices=["llama", "gpt2", "blenderbot"], default="llama")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=cmd_tiny_model)

    # --- training commands ---
    from .train import add_runs_arguments, add_train_arguments, run_runs_command, run_train_command

    train = commands.add_parser("train", help="train a model on a persona JSONL (see RunConfig for every field)")
    add_train_arguments(train)
    train.set_defaults(handler=run_train_command)

    runs = commands.add_parser("runs", help="list training runs with their state and best eval loss")
    add_runs_arguments(runs)
    runs.set_defaults(handler=run_runs_command)

    from .estimate import add_estimate_arguments, run_estimate_command

    estimate = commands.add_parser("estimate", help="parameters, peak memory, time and cost of a run before it starts")
    add_estimate_arguments(estimate)
    estimate.set_defaults(handler=run_estimate_command)

    from .generate import add_chat_arguments, run_chat_command

    chat = commands.add_parser("chat", help="reply to a prompt with a run, adapter, model folder or Hub id")
    add_chat_arguments(chat)
    chat.set_defaults(handler=run_chat_command)

    from .export import add_export_arguments, run_export_command

    export = commands.add_parser("export", help="export a run (adapter or merged), optionally push to the Hub")
    add_export_arguments(export)
    export.set_defaults(handler=run_export_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
