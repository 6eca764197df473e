"""talklike's command line: `python -m training COMMAND ...` (see README for every command).

One module per stage registers its commands. Handlers import the library late, so `--help` and
the data commands never pay for torch.
"""

from __future__ import annotations

import argparse
import sys

from training.cli import chat, data, export, memory, pairs, report, train
from training.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in (data, train, chat, memory, pairs, report, export):
        stage.register(commands)
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
