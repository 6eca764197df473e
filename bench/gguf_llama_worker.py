"""The llama.cpp half of bench_gguf.py, in its own process: torch and llama.cpp each bring an OpenMP
runtime, and quantized llama.cpp kernels crash in a process where torch is loaded.

    python bench/gguf_llama_worker.py < request.json > answer.json

Request: {"gguf", "inputs" (prompt token ids), "max_tokens", "stop_ids", "chats" (messages for the
chat API, or [])}. Answer: {"replies" (greedy token ids), "stopped" (llama.cpp ended the turn
itself), "chat_texts" (replies through create_chat_completion, which renders the GGUF's template)}.
"""

from __future__ import annotations

import json
import sys

import llama_cpp.llama_cpp as llama_api
from llama_cpp import Llama

_defaults = llama_api.llama_model_default_params


def _without_repacked_weights():
    # llama-cpp-python 0.3.36 built here crashes (SIGSEGV) in its x86 "repack" kernels on any prompt of
    # more than one token with a q8_0/q4_0 model, llama.cpp's own quantizations included; the plain
    # CPU kernels compute the same thing. Llama() does not expose the switch, so it is set here.
    params = _defaults()
    params.use_extra_bufts = False
    return params


def main() -> None:
    llama_api.llama_model_default_params = _without_repacked_weights
    request = json.load(sys.stdin)
    llm = Llama(model_path=request["gguf"], n_ctx=2048, n_threads=2, verbose=False)
    greedy = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "repeat_penalty": 1.0, "max_tokens": request["max_tokens"]}
    stop_ids, replies, stopped = set(request["stop_ids"]), [], []
    for ids in request["inputs"]:
        tokens = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            tokens.append(token)
            if token in stop_ids or len(tokens) >= request["max_tokens"]:
                break
        replies.append(tokens)
        finish = llm.create_completion(ids, **greedy)["choices"][0]["finish_reason"]
        stopped.append(finish == "stop")
    chat_texts = [
        llm.create_chat_completion(messages, **greedy)["choices"][0]["message"]["content"]
        for messages in request["chats"]
    ]
    llm.close()
    json.dump({"replies": replies, "stopped": stopped, "chat_texts": chat_texts}, sys.stdout)


if __name__ == "__main__":
    main()
