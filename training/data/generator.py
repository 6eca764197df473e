"""Kind (1) of seed 003's knowledge rows: question/answer pairs about a document, written by a model.

The generator is any model talklike can load (offline-small by default: it runs here, offline) or
an OpenAI-compatible server given by its base URL (llama.cpp, Ollama, vLLM, talklike's own
`/v1/chat/completions`): one POST per document. The prompt is the user's to edit; the answer is
read leniently ("Q:/A:" lines, numbered or bold, or a JSON list), and an answer with no usable
pair is counted and skipped, never fatal. Pairs beyond the per-document cap are dropped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from training.cancel import check_cancelled
from training.data.formats.text import chunk_lines, estimate_tokens
from training.data.knowledge import KnowledgeFile, qa_row, title_of
from training.errors import UserError

DEFAULT_PROMPT = """Read the document below, then write {n} questions a reader could ask about it, each \
followed by a short answer that the document supports. Write every pair on two lines, exactly like this:
Q: <question>
A: <answer>

Document: {title}
{text}
"""
API_KEY_VARIABLE = "TALKLIKE_GENERATOR_KEY"  # the endpoint's key, read from the environment, never a flag
MAX_PAIRS_PER_DOCUMENT = 20
TOKENS_PER_PAIR = 80  # generation budget per pair asked for (a question and a two-sentence answer)
REQUEST_TIMEOUT_S = 300  # a CPU llama.cpp server may take minutes for a long document

_LABEL = r"^\s*(?:\d+\s*[.)]\s*)?(?:[-*]\s*)?(?:\*\*)?{word}\s*\d*\s*(?:\*\*)?\s*[:.)]\s*(?:\*\*)?\s*"
_QUESTION = re.compile(_LABEL.format(word=r"(?:q|question)"), re.IGNORECASE)
_ANSWER = re.compile(_LABEL.format(word=r"(?:a|answer)"), re.IGNORECASE)

Generator = Callable[[str], str]  # prompt -> the model's answer text


@dataclass
class GenerationReport:
    documents: int = 0
    pairs: int = 0
    malformed: int = 0  # answers with no usable question/answer pair in them
    over_cap: int = 0  # pairs past the per-document cap, dropped
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # "<file>: <what was wrong>", for the malformed ones

    def as_dict(self) -> dict:
        return {
            "documents": self.documents,
            "pairs": self.pairs,
            "malformed_answers": self.malformed,
            "pairs_over_cap": self.over_cap,
            "seconds": round(self.seconds, 1),
        }


# ---- reading the answer ---------------------------------------------------------------------------


def parse_pairs(answer: str) -> list[tuple[str, str]]:
    """Question/answer pairs in a generator's answer: a JSON list of {question, answer}, or Q:/A: lines.

    Answers may run over several lines; a question with no answer, or an answer with no question, is left out.
    """
    pairs = _json_pairs(answer)
    if pairs:
        return pairs
    pairs, question, reply = [], None, None
    for line in answer.splitlines():
        if match := _QUESTION.match(line):
            _keep(pairs, question, reply)
            question, reply = line[match.end() :].strip().strip("*").strip(), None
        elif question is not None and (match := _ANSWER.match(line)):
            reply = line[match.end() :].strip()
        elif reply is not None and line.strip():
            reply += "\n" + line.strip()
    _keep(pairs, question, reply)
    return pairs


def _keep(pairs: list, question: str | None, reply: str | None) -> None:
    if question and reply and reply.strip():
        pairs.append((question, reply.strip()))


def _json_pairs(answer: str) -> list[tuple[str, str]]:
    start, end = answer.find("["), answer.rfind("]")
    if start < 0 or end <= start:
        return []
    try:
        items = json.loads(answer[start : end + 1])
    except (json.JSONDecodeError, RecursionError):
        return []
    pairs = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            question = item.get("question", item.get("q"))
            reply = item.get("answer", item.get("a"))
            if isinstance(question, str) and isinstance(reply, str) and question.strip() and reply.strip():
                pairs.append((question.strip(), reply.strip()))
    return pairs


# ---- generators -----------------------------------------------------------------------------------


def is_endpoint(spec: str) -> bool:
    return spec.strip().lower().startswith(("http://", "https://"))


def make_generator(spec: str, max_new_tokens: int, model_name: str | None = None) -> Generator:
    """An endpoint for an http(s) URL, else a model talklike loads (offline-small, a run, a folder, a Hub id)."""
    if is_endpoint(spec):
        return EndpointGenerator(spec, max_new_tokens, model_name)
    return ModelGenerator(spec, max_new_tokens)


class ModelGenerator:
    """A local model, greedy, through the chat path (its own chat template).

    Greedy with a repetition penalty: plain greedy, offline-small wrote the same "Question: ..." line
    until max_new_tokens on a samples/knowledge-like note (no pair); at 1.2 it wrote one pair.
    """

    def __init__(self, source: str, max_new_tokens: int):
        from training.chat.decoding import DecodingSettings
        from training.chat.loading import load_chat_model

        self.model = load_chat_model(source)
        self.settings = DecodingSettings(do_sample=False, repetition_penalty=1.2, max_new_tokens=max_new_tokens)

    def __call__(self, prompt: str) -> str:
        from training.chat.generate import reply

        return reply(self.model, [], prompt, self.settings)


class EndpointGenerator:
    """An OpenAI-compatible server: POST {base}/chat/completions; the model is the one named, else the first listed."""

    def __init__(self, base_url: str, max_new_tokens: int, model_name: str | None = None):
        import httpx

        self.base = base_url.strip().rstrip("/")
        key = os.environ.get(API_KEY_VARIABLE, "")
        self.client = httpx.Client(timeout=REQUEST_TIMEOUT_S, headers={"Authorization": f"Bearer {key}"} if key else {})
        self.max_new_tokens = max_new_tokens
        self.model = model_name or self._first_model()

    def _first_model(self) -> str:
        listed = self._request("GET", "/models")
        models = listed.get("data") if isinstance(listed, dict) else None
        if not models or not isinstance(models[0], dict) or not models[0].get("id"):
            raise UserError(f"generator {self.base}: /models lists no model; name one with --generator-model")
        return str(models[0]["id"])

    def __call__(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.max_new_tokens,
        }
        answer = self._request("POST", "/chat/completions", json=body)
        try:
            return str(answer["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            return ""  # not a chat completion: counted as a malformed answer

    def _request(self, method: str, route: str, **options) -> object:
        import httpx

        try:
            response = self.client.request(method, self.base + route, **options)
        except httpx.HTTPError as error:
            raise UserError(
                f"generator {self.base}: cannot reach it ({type(error).__name__}); is the server running?"
            ) from None
        if response.status_code >= 400:
            hint = " (set TALKLIKE_GENERATOR_KEY to its API key)" if response.status_code in (401, 403) else ""
            raise UserError(f"generator {self.base}{route}: HTTP {response.status_code}{hint}")
        try:
            return response.json()
        except ValueError:
            return None


# ---- one pass over the documents ------------------------------------------------------------------


def check_request(per_document: int, prompt: str) -> str:
    """The prompt, once the request is known to make sense (before a model loads or a server is called)."""
    if not 1 <= per_document <= MAX_PAIRS_PER_DOCUMENT:
        raise UserError(f"generate: {per_document}; expected 1 to {MAX_PAIRS_PER_DOCUMENT} pairs per document")
    if "{text}" not in prompt:
        raise UserError(
            "prompt: it has no {text} placeholder, so the generator would never see the document; "
            "keep {text} (and optionally {n} and {title})"
        )
    return prompt


def generate_pairs(
    files: list[KnowledgeFile],
    generator: Generator,
    per_document: int,
    prompt: str = DEFAULT_PROMPT,
    chunk_tokens: int = 1024,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[dict], GenerationReport]:
    """Up to `per_document` pairs for each document (code files get none), as "qa" rows."""
    check_request(per_document, prompt)
    documents = [file for file in files if not file.is_code]
    report, rows, started = GenerationReport(), [], time.perf_counter()
    for done, file in enumerate(documents):
        check_cancelled()
        if progress is not None:
            progress(done, len(documents), file.shown)
        text = next(iter(chunk_lines(file.text, chunk_tokens, estimate_tokens)), "")  # the head of a long document
        filled = prompt.replace("{n}", str(per_document)).replace("{title}", title_of(file)).replace("{text}", text)
        pairs = _unique(parse_pairs(generator(filled)))
        report.documents += 1
        if not pairs:
            report.malformed += 1
            report.problems.append(f"{file.shown}: no Q:/A: pair in the generator's answer")
        report.over_cap += max(0, len(pairs) - per_document)
        rows += [qa_row(question, answer, file) for question, answer in pairs[:per_document]]
    report.pairs, report.seconds = len(rows), time.perf_counter() - started
    if progress is not None:
        progress(len(documents), len(documents), "")
    return rows, report


def _unique(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen, kept = set(), []
    for question, answer in pairs:
        if question.lower() not in seen:
            seen.add(question.lower())
            kept.append((question, answer))
    return kept
