"""Chat commands: chat (one prompt, or a JSONL of histories)."""

from __future__ import annotations

import argparse
import sys

from training.errors import UserError

LOAD_MODES = ("auto", "full", "8bit", "4bit")  # training.chat.precision.LOAD_MODES, without importing torch


def register(commands) -> None:
    chat = commands.add_parser("chat", help="reply to a prompt, or to each history in a JSONL, with a run or model")
    _chat_arguments(chat)
    chat.set_defaults(handler=run_chat_command)


def _chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="RUN_OR_MODEL", help="run, adapter or model folder, Hub id, offline-small, offline-tiny"
    )
    parser.add_argument("--prompt", help="the message to answer")
    parser.add_argument("--prompts", metavar="IN.jsonl", help='histories to answer, one {"messages": [...]} per line')
    parser.add_argument("--out", metavar="OUT.jsonl", help='with --prompts: each input line plus "reply"')
    decoding_arguments(parser)
    parser.add_argument("--base", action="store_true", help="answer with the base model (adapter switched off)")
    parser.add_argument(
        "--print-prompt",
        action="store_true",
        help="print the text the model would receive for --prompt (its chat template, system "
        "prompt, persona settings) and exit without replying",
    )
    parser.add_argument(
        "--load-in",
        choices=LOAD_MODES,
        default="auto",
        help="weights in full precision, 8 or 4 bits (CUDA + bitsandbytes); auto = quantize only "
        "when the model would not fit the GPU otherwise",
    )
    memory_arguments(parser)


def memory_arguments(parser: argparse.ArgumentParser) -> None:
    """The memory flags (also `report`'s): recall past exchanges of the training data into the system prompt."""
    group = parser.add_argument_group(
        "memory", "your past replies (from the training data only) and facts, given to the model in its system prompt"
    )
    group.add_argument("--memory", action="store_true", help="recall past exchanges like the message, and the facts")
    group.add_argument(
        "--memory-k", type=int, default=None, metavar="K", help="past exchanges recalled per message (2)"
    )
    group.add_argument(
        "--memory-from",
        metavar="DATA.jsonl",
        help="the data set whose memory to use (default: the run's training data)",
    )
    group.add_argument(
        "--memory-exclude-thread",
        action="append",
        default=[],
        metavar="TITLE_OR_ID",
        help="never recall from this thread",
    )
    group.add_argument(
        "--memory-exclude-person",
        action="append",
        default=[],
        metavar="NAME",
        help="never recall from threads with this person",
    )
    group.add_argument(
        "--facts", metavar="FILE", help="facts about you, one per line (default: DATA.facts.txt beside the data)"
    )
    group.add_argument("--show-memory", action="store_true", help="print the memories used before the reply")


def memory_from_args(args: argparse.Namespace, source: str | None = None):
    """The ChatMemory the flags ask for, or None without --memory (checked before any model loads)."""
    given = [
        flag
        for flag, value in (
            ("--memory-k", args.memory_k),
            ("--memory-from", args.memory_from),
            ("--facts", args.facts),
            ("--memory-exclude-thread", args.memory_exclude_thread),
            ("--memory-exclude-person", args.memory_exclude_person),
            ("--show-memory", getattr(args, "show_memory", False)),
        )
        if value
    ]
    if not args.memory:
        if given:
            raise UserError(f"{given[0]}: only with --memory")
        return None
    from training.chat.memory_prompt import DEFAULT_K, MemorySettings, open_chat_memory

    settings = MemorySettings(
        k=DEFAULT_K if args.memory_k is None else args.memory_k,
        exclude_threads=tuple(args.memory_exclude_thread),
        exclude_people=tuple(args.memory_exclude_person),
    )
    chosen = args.memory_from or source or args.source
    _say_if_indexing(chosen)
    return open_chat_memory(chosen, settings, facts_file=args.facts)


def _say_if_indexing(source: str) -> None:
    """`prepare` leaves the index to its first use: say so, as a big export's takes a few seconds."""
    from training.chat.memory import is_pending, memory_path
    from training.chat.memory_prompt import memory_data_file

    try:
        folder = memory_path(memory_data_file(source))
    except UserError:
        return  # open_chat_memory says what is wrong
    if is_pending(folder):
        print(f"indexing your past replies in {folder.name} (first use)...", file=sys.stderr, flush=True)


def decoding_arguments(
    parser: argparse.ArgumentParser, preset: str = "Balanced", seed: bool = True, max_new_tokens: int | None = None
) -> None:
    """The decoding flags (also `report`'s): a preset, then any knob to change in it."""
    from training.chat.decoding import PRESETS  # no torch: --help stays fast

    parser.add_argument("--preset", choices=list(PRESETS), default=preset, help="starting decoding settings")
    parser.add_argument("--greedy", action="store_true", help="always the likeliest token (deterministic)")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--top-p", type=float, help="nucleus sampling probability mass")
    parser.add_argument("--top-k", type=int, help="sample among the k likeliest tokens; 0 = no limit")
    parser.add_argument("--repetition-penalty", type=float, help="> 1 discourages repeats")
    parser.add_argument("--no-repeat-ngram", type=int, help="never repeat an n-gram of this size")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="longest reply in tokens")
    if seed:
        parser.add_argument("--seed", type=int, help="random seed for sampling")


def settings_from_args(args: argparse.Namespace):
    from training.chat.decoding import preset

    sampling = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k}
    given_sampling = [f"--{name.replace('_', '-')}" for name, value in sampling.items() if value is not None]
    if args.greedy and given_sampling:
        raise UserError(f"--greedy and {given_sampling[0]}: choose one (greedy does not sample)")
    other = {
        "repetition_penalty": args.repetition_penalty,
        "no_repeat_ngram_size": args.no_repeat_ngram,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
    }
    overrides = {name: value for name, value in {**sampling, **other}.items() if value is not None}
    if given_sampling:
        overrides["do_sample"] = True
    return preset("Greedy" if args.greedy else args.preset, **overrides)


def run_chat_command(args: argparse.Namespace) -> None:
    """`python -m training chat`: print the reply as it is generated (or, with --print-prompt, the
    prompt), or answer a JSONL of histories."""
    if bool(args.prompt) == bool(args.prompts):
        raise UserError("chat: give --prompt TEXT or --prompts IN.jsonl (with --out OUT.jsonl)")
    if bool(args.prompts) != bool(args.out):
        raise UserError("--prompts and --out: give both (the histories to answer, where the replies go)")
    if args.prompts and args.print_prompt:
        raise UserError("--print-prompt: only with --prompt TEXT")
    settings = settings_from_args(args)  # before loading, so a bad flag fails fast
    memory = memory_from_args(args)
    if args.prompts:
        _chat_batch(args, settings, memory)
        return
    from training.chat.generate import build_prompt, load_chat_model, stream_reply

    model = load_chat_model(args.source, load_in=args.load_in)
    if args.print_prompt:  # seq2seq: the encoder's text, before its tokenizer adds special tokens
        sys.stdout.write(build_prompt(model, [], args.prompt, settings.max_new_tokens, memory).text + "\n")
        return
    if args.load_in != "auto" or model.precision in ("8-bit", "4-bit"):  # say why it is not the usual precision
        print(f"talklike: {model.name} loaded in {model.load_note}", file=sys.stderr, flush=True)
    printed = ""
    show = _print_memories if args.show_memory else None
    for text in stream_reply(
        model, [], args.prompt, settings, use_adapter=not args.base, memory=memory, on_prompt=show
    ):
        # Stripping can only shorten the end, so each text extends what was printed.
        sys.stdout.write(text[len(printed) :] if text.startswith(printed) else "\n" + text)
        sys.stdout.flush()
        printed = text
    sys.stdout.write("\n")


def _print_memories(prompt) -> None:
    from training.chat.memory_prompt import describe

    lines = describe(prompt.remembered).splitlines() if prompt.remembered is not None else []
    sys.stdout.write("memories used:\n" + "".join(f"  {line}\n" for line in lines) + "\n")
    sys.stdout.flush()


def _chat_batch(args: argparse.Namespace, settings, memory) -> None:
    from training.chat.batch import read_histories, reply_all, write_replies
    from training.chat.generate import load_chat_model

    records = read_histories(args.prompts)  # every line checked before the model loads
    model = load_chat_model(args.source, load_in=args.load_in)
    if args.base and not model.has_adapter:
        raise UserError(f"--base: {model.name} has no adapter to switch off (a full fine-tune or a plain model)")

    def advance(done: int) -> None:
        print(f"\r{done}/{len(records)} replies", end="", file=sys.stderr, flush=True)

    answered = reply_all(model, records, settings, use_adapter=not args.base, advance=advance, memory=memory)
    print(file=sys.stderr)
    print(write_replies(answered, args.out))
