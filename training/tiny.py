"""Tiny random-weight models with a freshly trained tokenizer, built offline in about a second.

Nothing can be fetched from the Hugging Face Hub here (or in CI), and no package ships usable
pretrained weights, so tests, benchmarks and the offline demo train these instead. They load with
the same Auto* classes and `from_pretrained(path)` as a real model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BlenderbotConfig,
    BlenderbotForConditionalGeneration,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from training.errors import UserError
from training.templates import FALLBACK_TEMPLATES

ARCHS = ("llama", "gpt2", "blenderbot")
PAD, EOS, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
# Positions each architecture can attend over; the tokenizer's model_max_length says the same.
_CONTEXT = {"llama": 2048, "gpt2": 1024, "blenderbot": 512}


def build_tiny_model(
    out_dir: str | os.PathLike,
    arch: str = "llama",
    corpus: list[str] | None = None,
    seed: int = 0,
    vocab_size: int = 2048,
) -> Path:
    """Write a random-weight `arch` model, its tokenizer and generation config to `out_dir`.

    The tokenizer is a byte-level BPE (any text round-trips) trained on `corpus`, by default the
    bundled samples' text. Same arguments and corpus give the same files.
    """
    if arch not in ARCHS:
        raise UserError(f"arch: unknown {arch!r}; expected one of {', '.join(ARCHS)}")
    out = Path(out_dir)
    tokenizer = train_tokenizer(default_corpus() if corpus is None else corpus, vocab_size, _CONTEXT[arch])
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (PAD, EOS, IM_START, IM_END)}
    with torch.random.fork_rng(devices=[]):  # seed the weights without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = _build_model(arch, len(tokenizer), ids)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids[IM_END], ids[EOS]],  # stop at the end of a chat turn or of a text
        pad_token_id=ids[PAD],
        decoder_start_token_id=model.config.decoder_start_token_id if arch == "blenderbot" else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train_tokenizer(corpus: list[str], vocab_size: int = 2048, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML special tokens and a ChatML template with generation markers."""
    texts = [text for text in corpus if isinstance(text, str) and text]
    if not texts:
        raise UserError("corpus: expected at least one non-empty string to train the tokenizer on")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte, so unseen text still encodes
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=model_max_length,
    )
    tokenizer.chat_template = FALLBACK_TEMPLATES["chatml"]
    return tokenizer


# The three shapes, a few million parameters each: big enough to train and generate like the real
# thing, small enough for a test. Blenderbot is BART-style: its decoder starts from EOS.
_SHAPES = {
    "llama": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4),
    "gpt2": dict(n_embd=256, n_layer=4, n_head=4),
    "blenderbot": dict(d_model=256, encoder_ffn_dim=1024, decoder_ffn_dim=1024, encoder_layers=2, decoder_layers=2),
}


def _build_model(arch: str, vocab: int, ids: dict[str, int]) -> PreTrainedModel:
    shape = {**_SHAPES[arch], "vocab_size": vocab}
    shape.update(pad_token_id=ids[PAD], eos_token_id=ids[EOS], bos_token_id=ids[EOS])
    if arch == "llama":  # ~5M parameters
        shape.update(num_key_value_heads=2, max_position_embeddings=_CONTEXT[arch], tie_word_embeddings=False)
        return LlamaForCausalLM(LlamaConfig(**shape))
    if arch == "gpt2":  # ~4M parameters
        return GPT2LMHeadModel(GPT2Config(**shape, n_positions=_CONTEXT[arch]))
    shape.update(encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=_CONTEXT[arch])
    shape.update(decoder_start_token_id=ids[EOS], forced_eos_token_id=ids[EOS])
    return BlenderbotForConditionalGeneration(BlenderbotConfig(**shape))  # ~4M parameters


def default_corpus() -> list[str]:
    """The bundled sample persona's text (samples/sam_persona.jsonl), else the built-in chat lines.

    One named file, not every samples/*.jsonl: the tokenizer (and so every offline-tiny model and the
    tests built on it) must not change when another sample file is added."""
    path = SAMPLES_DIR / "sam_persona.jsonl"
    return (_jsonl_texts(path) if path.is_file() else []) or builtin_corpus()


def _jsonl_texts(path: Path) -> list[str]:
    from training.data.jsonl import records

    texts: list[str] = []
    for _, row in records(path):
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            texts.append(row["text"])
        for key in ("prompt", "completion", "messages"):
            messages = row.get(key) if isinstance(row, dict) else None
            if isinstance(messages, list):
                texts.extend(
                    m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)
                )
    return texts


# The fallback corpus is generated from phrase lists rather than stored: a few hundred varied,
# chat-like lines from ~40 lines of source, identical on every run.
_NAMES = ["Sam", "Alex", "Jo", "Priya", "Marco", "Lena", "Tom", "Mia", "Noah", "Zoe", "Omar", "Ines"]
_OPENERS = ["hey", "hi", "hello", "yo", "morning", "hey hey", "hiya", "evening", "oi", "heyy"]
_TIMES = ["tonight", "tomorrow", "at 7", "after work", "on Saturday", "this weekend", "around noon", "later"]
_PLACES = ["the cafe", "the park", "Marco's place", "the cinema", "the gym", "the station", "the pub", "the beach"]
_QUESTIONS = [
    "how are you?",
    "what are you up to?",
    "are we still on for {time}?",
    "did you see the game?",
    "want to meet at {place} {time}?",
    "can you call me {time}?",
    "did you finish the report?",
    "have you eaten yet?",
    "is it raining where you are?",
    "what time does it start?",
    "do you need anything from the shop?",
    "how was the trip?",
    "are you coming {time}?",
]
_ANSWERS = [
    "good thanks, you?",
    "not much, just chilling",
    "yes! see you {time}",
    "haha no, I missed it",
    "sure, {place} works for me",
    "can't {time}, sorry. maybe tomorrow?",
    "almost done, sending it soon",
    "not yet, starving",
    "pouring all day lol",
    "I think it starts at 8",
    "milk and bread please :)",
    "amazing, the food was great",
    "omg yes",
    "I'll be a bit late, traffic is terrible",
    "ok cool",
    "sounds good!",
    "lol same",
    "no worries",
    "thanks so much!",
    "I'm on my way",
]
_FOLLOW_UPS = [
    "great, see you then",
    "ok, text me when you get there",
    "perfect, thanks {name}",
    "haha fair enough",
    "let me know if anything changes",
    "love it",
    "bring a jacket, it's cold",
    "what should I bring?",
    "can't wait!",
    "ok talk soon",
]


def builtin_corpus(lines: int = 300) -> list[str]:
    """Short English chat messages: questions, replies and follow-ups between friends."""
    corpus = []
    for index in range(lines):
        fill = {
            "name": _NAMES[index % len(_NAMES)],
            "time": _TIMES[(index * 3) % len(_TIMES)],
            "place": _PLACES[(index * 5) % len(_PLACES)],
        }
        kind = index % 3
        if kind == 0:
            opener = _OPENERS[(index // 3) % len(_OPENERS)]
            question = _QUESTIONS[(index * 7) % len(_QUESTIONS)]
            corpus.append(f"{opener} {fill['name']}, {question}".format(**fill))
        elif kind == 1:
            corpus.append(_ANSWERS[(index * 11) % len(_ANSWERS)].format(**fill))
        else:
            corpus.append(_FOLLOW_UPS[(index * 13) % len(_FOLLOW_UPS)].format(**fill))
    return corpus
