"""Preference data command: pairs (feedback and held-out replies, for a DPO or KTO round)."""

from __future__ import annotations

import json
import sys


def register(commands) -> None:
    pairs = commands.add_parser(
        "pairs", help="preference pairs from a finished run's chat feedback and held-out replies (for --method dpo/kto)"
    )
    pairs.add_argument("run", help="a finished run folder, or a run name under the runs folder")
    pairs.add_argument(
        "--from-feedback", action="store_true", help="the rewrites given in the Chat tab (with --kto: the thumbs too)"
    )
    pairs.add_argument(
        "--from-heldout",
        type=int,
        metavar="N",
        help="N held-out conversations: the real reply chosen, the tuned model's greedy reply rejected",
    )
    pairs.add_argument("--kto", action="store_true", help="write unpaired rows {prompt, completion, label} for KTO")
    pairs.add_argument("--seed", type=int, default=0, help="picks the held-out conversations")
    pairs.add_argument("--max-new-tokens", type=int, default=64, help="length bound of the generated replies")
    pairs.add_argument("--out", required=True, metavar="PAIRS.jsonl", help="where to write the rows (private text)")
    pairs.set_defaults(handler=run_pairs_command)


def run_pairs_command(args) -> None:
    from training.report.pairs import build_pairs, write_pairs

    def advance(done: int, total: int) -> None:
        print(f"\r{done}/{total} held-out replies", end="", file=sys.stderr, flush=True)

    pairs = build_pairs(
        args.run,
        from_feedback=args.from_feedback,
        from_heldout=args.from_heldout,
        kto=args.kto,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        advance=advance,
    )
    if args.from_heldout is not None:
        print(file=sys.stderr)
    path = write_pairs(pairs.rows, args.out)
    print(json.dumps({"out": str(path), "rows": len(pairs.rows), **pairs.sources, "skipped_same": pairs.skipped_same}))
