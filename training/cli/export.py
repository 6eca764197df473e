"""Export commands: export."""

from __future__ import annotations

import json
from typing import Any

from training.errors import UserError


def register(commands) -> None:
    export = commands.add_parser("export", help="export a run (adapter or merged), optionally push to the Hub")
    _export_arguments(export)
    export.set_defaults(handler=run_export_command)


def _export_arguments(parser) -> None:
    """`export RUN --merge|--adapter --out DIR [--push REPO_ID [--public]]` and friends."""
    parser.add_argument("run", help="run folder, or a run name under the runs folder")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--merge", action="store_true", help="merge the adapter into the base: a plain transformers model")
    kind.add_argument("--adapter", action="store_true", help="the adapter only (a few MB; loading it also needs the base)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (must be empty unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it already holds files")
    parser.add_argument("--samples", metavar="FILE", help='JSONL of {"prompt": ..., "reply": ...} to show in the model card')
    parser.add_argument("--report-examples", action="store_true",
                        help="quote the persona report's side-by-side examples (held-out chats) in the model card")
    parser.add_argument("--gguf", metavar="FILE", help="also write a GGUF file (with --merge; Llama + byte-level BPE only)")
    parser.add_argument("--push", metavar="REPO_ID", help="upload to this Hub repo (token: HF_TOKEN or `hf auth login`)")
    parser.add_argument("--public", action="store_true", help="with --push: make a new repo public (default private)")


def run_export_command(args) -> dict[str, Any]:
    """Run `export` for parsed `args`; prints and returns {"export", "gguf", "url"}."""
    from training.export.modelcard import check_samples
    from training.export.save import export_run, read_samples

    if args.public and not args.push:
        raise UserError("--public: only means something with --push REPO_ID")
    if args.gguf and not args.merge:
        raise UserError("--gguf: needs --merge (GGUF holds a whole model, not an adapter)")
    samples = check_samples(read_samples(args.samples)) if args.samples else None
    folder = export_run(args.run, args.out, merge=args.merge, samples=samples, report_examples=args.report_examples,
                        repo_id=args.push, overwrite=args.overwrite)  # fmt: skip
    result: dict[str, Any] = {"export": str(folder), "gguf": None, "url": None}
    if args.gguf:
        from training.export.gguf import write_gguf

        result["gguf"] = str(write_gguf(folder, args.gguf))
    if args.push:
        from training.export.hub import push

        result["url"] = push(folder, args.push, private=not args.public)
    print(json.dumps(result, indent=2))
    return result
