"""Report command: how much a run sounds like its person, on held-out chats."""

from __future__ import annotations

import json
import sys

from training.cli.chat import decoding_arguments, settings_from_args
from training.errors import UserError


def register(commands) -> None:
    report = commands.add_parser("report", help="persona report: held-out loss, style, classifier, base vs tuned")
    _report_arguments(report)
    report.set_defaults(handler=run_report_command)
    blind = commands.add_parser(
        "blind-test", help="prepare a blind test (friends pick which reply is really you) or show its votes"
    )
    blind.add_argument("run", help="run folder, or a run name under the runs folder")
    blind.add_argument(
        "--items", type=int, default=20, help="held-out conversations to show, picked with the seed (20)"
    )
    blind.add_argument("--seed", type=int, default=0, help="picks the conversations; seeds the bot's replies")
    blind.add_argument(
        "--allow-showing-my-texts",
        action="store_true",
        dest="consent",
        help="agree that visitors of the page see these real held-out messages of yours",
    )
    blind.add_argument("--results", action="store_true", help="only show the votes so far (the fool rate)")
    decoding_arguments(blind, seed=False, max_new_tokens=64)
    _memory_arguments(blind, "the bot replies with memory")
    blind.set_defaults(handler=run_blind_test_command)


def _report_arguments(parser) -> None:
    parser.add_argument("run", help="run folder, or a run name under the runs folder")
    parser.add_argument("--data", metavar="VAL.jsonl", help="held-out rows to use instead of the run's validation data")
    parser.add_argument("--limit", type=int, help="at most N held-out rows, picked at random with the seed")
    parser.add_argument("--seed", type=int, default=0, help="picks rows, halves, resamples, examples; seeds decoding")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--include-examples",
        action="store_true",
        help="quote a few held-out conversations side by side (private text; off by default)",
    )
    decoding_arguments(parser, seed=False, max_new_tokens=64)
    _memory_arguments(parser, "also reply with memory: tuned+memory and base+memory next to tuned and base")


def _memory_arguments(parser, what: str) -> None:
    parser.add_argument(
        "--memory",
        action="store_true",
        help=f"{what} (past exchanges from the training rows only, and the facts)",
    )
    parser.add_argument(
        "--memory-k", type=int, default=None, metavar="K", help="past exchanges recalled per message (2)"
    )


def _memory_settings(args):
    """--memory/--memory-k as MemorySettings, or None without --memory."""
    if args.memory_k is not None and not args.memory:
        raise UserError("--memory-k: only with --memory")
    if not args.memory:
        return None
    from training.chat.memory_prompt import DEFAULT_K, MemorySettings

    return MemorySettings(k=DEFAULT_K if args.memory_k is None else args.memory_k).validate()


def run_report_command(args) -> dict:
    from training.report.build import ReportOptions, build_report
    from training.report.render import to_markdown

    # --seed is the report's and also the decoding seed: the same replies on every run.
    settings = settings_from_args(args)  # before loading, so a bad flag fails fast
    memory = _memory_settings(args)
    options = ReportOptions(
        data=args.data,
        limit=args.limit,
        seed=args.seed,
        include_examples=args.include_examples,
        decoding=settings,
        memory=memory,
    )
    report = build_report(args.run, options, progress=_progress_line)
    print(file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else to_markdown(report))
    return report


def run_blind_test_command(args) -> dict:
    from training.report.blind import prepare_items, tally_markdown, votes_of
    from training.train.run_record import read_run

    if args.results:
        result = votes_of(read_run(args.run).path)
        print(tally_markdown(result))
        return result
    settings = settings_from_args(args)
    memory = _memory_settings(args)
    path = prepare_items(
        args.run, count=args.items, seed=args.seed, consent=args.consent, decoding=settings, memory=memory
    )
    items = len(json.loads(path.read_text(encoding="utf-8"))["items"])
    print(f"{items} conversations ready in {path}; share them with: python app.py --blind-test {args.run} ...")
    return {"items": items, "path": str(path)}


def _progress_line(fraction: float, what: str) -> None:
    print(f"\r{fraction:4.0%} {what[:70]:<70}", end="", file=sys.stderr, flush=True)
