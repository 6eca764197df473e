"""GGUF self-check: greedy replies of talklike's GGUF in llama.cpp vs the same model in transformers.

For each quantization, held-out chat prompts (the sample persona's conversations, never trained on
here) are rendered with the model's chat template and answered greedily by both; the table says how
many replies are identical token for token, how many start with the same token, the share of tokens
before the first difference, and whether llama.cpp ended the turn where transformers did (at the
end-of-turn token, not at the token limit). A last row answers through llama-cpp-python's chat API,
which renders the chat template stored in the GGUF, to check that template too.

    pip install llama-cpp-python==0.3.36   # builds llama.cpp with the machine's compiler (~40 min on 2 busy cores)
    python bench/bench_gguf.py --model offline-small [--quants f16 q8_0 q4_0] [--prompts 12] [--tokens 32] [--write-doc]

`--model` is a merged model folder or a name talklike resolves (offline-small: SmolLM2-135M-Instruct).
llama-cpp-python is not a test dependency: only this script needs it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdoc import machine, replace_section  # noqa: E402
from training.export.gguf import write_gguf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## GGUF in llama.cpp vs transformers (greedy agreement)"


def held_out_prompts(count: int) -> list[list[dict[str, str]]]:
    """The first user turns (with the persona's system prompt) of the sample conversations."""
    prompts = []
    for line in (ROOT / "samples" / "sam_persona.jsonl").read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        system = [m for m in messages if m["role"] == "system"]
        first_user = next(m for m in messages if m["role"] == "user")
        prompts.append([*system, first_user])
        if len(prompts) == count:
            break
    return prompts


def hf_replies(folder: Path, prompts, max_tokens: int, stop_ids: set[int]) -> tuple[list[list[int]], list[list[int]]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    inputs, replies = [], []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=sorted(stop_ids),
                pad_token_id=tokenizer.pad_token_id,
            )
        inputs.append(list(ids))
        replies.append(out[0, len(ids) :].tolist())
    return inputs, replies


def llama_replies(path: Path, inputs, max_tokens: int, stop_ids: set[int], chats) -> dict:
    """Greedy token ids from llama.cpp for the same prompt tokens (gguf_llama_worker.py, its own process)."""
    request = {
        "gguf": str(path),
        "inputs": inputs,
        "max_tokens": max_tokens,
        "stop_ids": sorted(stop_ids),
        "chats": chats,
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gguf_llama_worker.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"llama.cpp worker failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def compare(hf: list[list[int]], llama: list[list[int]], stop_ids: set[int]) -> dict[str, float]:
    identical = sum(a == b for a, b in zip(hf, llama))
    first = sum(bool(a) and bool(b) and a[0] == b[0] for a, b in zip(hf, llama))
    prefix = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))) for a, b in zip(hf, llama)]
    share = sum(prefix) / max(1, sum(len(a) for a in hf))
    hf_stops = sum(bool(a) and a[-1] in stop_ids for a in hf)
    return {"identical": identical, "first": first, "prefix_share": share, "hf_stops": hf_stops}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="merged model folder, or offline-small")
    parser.add_argument("--quants", nargs="+", default=["f16", "q8_0", "q4_0"])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--write-doc", action="store_true", help=f"write the table into docs/benchmarks.md ({HEADING})")
    args = parser.parse_args(argv)
    from importlib.metadata import PackageNotFoundError, version

    try:
        llama_version = version("llama-cpp-python")
    except PackageNotFoundError:
        raise SystemExit(
            "llama-cpp-python is not installed: pip install llama-cpp-python==0.3.36 (builds from source)"
        ) from None
    from transformers import AutoTokenizer

    from training.models import resolve

    folder = Path(resolve(args.model))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    end_of_turn = [t for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>") if t in tokenizer.get_vocab()]
    stop_ids = {tokenizer.convert_tokens_to_ids(t) for t in end_of_turn} | {tokenizer.eos_token_id}
    prompts = held_out_prompts(args.prompts)
    inputs, hf = hf_replies(folder, prompts, args.tokens, stop_ids)
    hf_texts = [tokenizer.decode(reply, skip_special_tokens=True) for reply in hf]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for quant in args.quants:
            path = write_gguf(folder, Path(scratch) / f"model-{quant}.gguf", quant)
            chats = prompts if quant == args.quants[0] else []  # the GGUF's own template, checked once
            answer = llama_replies(path, inputs, args.tokens, stop_ids, chats)
            row = {
                "quant": quant,
                "mb": path.stat().st_size / 1e6,
                **compare(hf, answer["replies"], stop_ids),
                "llama_stops": sum(answer["stopped"]),
            }
            if chats:
                row["chat_api"] = sum(a.strip() == b.strip() for a, b in zip(answer["chat_texts"], hf_texts))
            rows.append(row)
    n = len(prompts)
    lines = [
        f"`python bench/bench_gguf.py --model {args.model} --quants {' '.join(args.quants)} --prompts {args.prompts} "
        f"--tokens {args.tokens}`; llama-cpp-python {llama_version}; {machine()}",
        "",
        f"{n} held-out prompts (first turns of samples/sam_persona.jsonl), greedy, up to {args.tokens} new tokens; "
        f"transformers ended {rows[0]['hf_stops']} of {n} replies at the end-of-turn token.",
        "",
        "| GGUF | size MB | identical replies | same first token | tokens before first difference "
        "| llama.cpp stopped at end of turn | chat API (GGUF template) = transformers |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        chat = f"{r['chat_api']}/{n}" if "chat_api" in r else ""
        lines.append(
            f"| {r['quant']} | {r['mb']:.0f} | {r['identical']}/{n} | {r['first']}/{n} | {r['prefix_share']:.0%} "
            f"| {r['llama_stops']}/{n} | {chat} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write_doc:
        replace_section(ROOT / "docs" / "benchmarks.md", HEADING, table, script="bench/bench_gguf.py")


if __name__ == "__main__":
    main()
