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
    kind.add_argument(
        "--merge", action="store_true", help="merge the adapter into the base: a plain transformers model"
    )
    kind.add_argument(
        "--adapter", action="store_true", help="the adapter only (a few MB; loading it also needs the base)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (must be empty unless --overwrite)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it already holds files")
    card = parser.add_argument_group("the model card")
    card.add_argument(
        "--report-examples",
        action="store_true",
        help="quote the persona report's side-by-side examples (held-out chats) in the model card",
    )
    card.add_argument(
        "--samples", metavar="FILE", help='JSONL of {"prompt": ..., "reply": ...} to show in the model card'
    )
    gguf = parser.add_argument_group("GGUF, for llama.cpp and Ollama (--gguf)")
    gguf.add_argument(
        "--gguf", metavar="FILE", help="also write a GGUF file and an Ollama Modelfile beside it (with --merge)"
    )
    gguf.add_argument(
        "--quant",
        default="f16",
        metavar="TYPE",
        help="with --gguf: f32, f16, bf16, q8_0, q5_1, q4_0 (written here), or a k-quant such as "
        "q4_k_m (f16 written, llama-quantize command printed)",
    )
    gguf.add_argument(
        "--decoding",
        metavar="PRESET_OR_JSON",
        help="decoding defaults for the Modelfile and the Space: Greedy (default), Balanced, Creative or JSON",
    )
    hub = parser.add_argument_group("the Hugging Face Hub (--push)")
    hub.add_argument("--push", metavar="REPO_ID", help="upload to this Hub repo (token: HF_TOKEN or `hf auth login`)")
    hub.add_argument(
        "--public", action="store_true", help="with --push or --space: make a new model repo public (default private)"
    )
    space = parser.add_argument_group("a Space for friends (--space)")
    space.add_argument(
        "--space",
        metavar="SPACE_ID",
        help="push the model (to --push, else a model repo named like the Space) "
        "and deploy a Gradio Space chatting with it; a private model is read with HF_READ_TOKEN if set, else your token",
    )
    space.add_argument("--hardware", default="cpu-basic", help="with --space: the Space's hardware (cpu-basic is free)")
    space.add_argument(
        "--private-space", action="store_true", help="with --space: only you (or your org) can open the Space"
    )
    from training.chat.serving import ChatLimits

    ChatLimits.add_arguments(space)


def run_export_command(args) -> dict[str, Any]:
    """Run `export` for parsed `args`; prints and returns the paths and URLs it made."""
    import os

    from training.chat.serving import ChatLimits, parse_decoding
    from training.export.modelcard import check_samples
    from training.export.save import export_run, read_samples

    if args.public and not (args.push or args.space):
        raise UserError("--public: only means something with --push REPO_ID or --space SPACE_ID")
    if args.gguf and not args.merge:
        raise UserError("--gguf: needs --merge (GGUF holds a whole model, not an adapter)")
    if args.quant != "f16" and not args.gguf:
        raise UserError("--quant: only means something with --gguf FILE")
    decoding, limits = parse_decoding(args.decoding), ChatLimits.from_args(args)
    samples = check_samples(read_samples(args.samples)) if args.samples else None
    folder = export_run(
        args.run,
        args.out,
        merge=args.merge,
        samples=samples,
        report_examples=args.report_examples,
        repo_id=args.push or args.space,
        overwrite=args.overwrite,
    )
    result: dict[str, Any] = {"export": str(folder), "gguf": None, "url": None}
    if args.gguf:
        from training.export.modelfile import export_for_ollama

        made = export_for_ollama(folder, args.gguf, args.quant, decoding)
        result.update(
            {key: str(value) if value is not None and key != "commands" else value for key, value in made.items()}
        )
    if args.space:
        from training.export.space import deploy_bot_space

        deployed = deploy_bot_space(
            folder,
            args.space,
            model_repo=args.push,
            read_token=os.environ.get("HF_READ_TOKEN"),
            public_model=args.public,
            private_space=args.private_space,
            hardware=args.hardware,
            decoding=decoding,
            limits=limits,
        )
        result.update(url=deployed["model_url"], space_url=deployed["space_url"], notes=deployed["notes"])
    elif args.push:
        from training.export.hub import push

        result["url"] = push(folder, args.push, private=not args.public)
    print(json.dumps(result, indent=2))
    return result
