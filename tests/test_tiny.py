"""The offline tiny models: they build, load back like real models, run, and are reproducible."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from training import tiny
from training.errors import UserError
from training.tiny import (
    build_tiny_model,
    builtin_corpus,
    default_corpus,
    train_tokenizer,
)

ROUND_TRIP = "Heyy Maya!! café at 7? 😀👍🏽\n  tabs\tand ñ, 東京 — ok <|im_end|>"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(root / arch, arch=arch, corpus=builtin_corpus()) for arch in tiny.ARCHS}


@pytest.mark.parametrize(
    "arch, auto_class, low, high",
    [
        ("llama", AutoModelForCausalLM, 3.5e6, 6e6),
        ("gpt2", AutoModelForCausalLM, 3e6, 5e6),
        ("blenderbot", AutoModelForSeq2SeqLM, 3e6, 5e6),
    ],
)
def test_model_loads_with_auto_classes_and_runs(built, arch, auto_class, low, high):
    tokenizer = AutoTokenizer.from_pretrained(built[arch])
    model = auto_class.from_pretrained(built[arch])
    assert model.config.model_type == arch
    assert low < sum(p.numel() for p in model.parameters()) < high
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)

    batch = tokenizer(["hey Sam, how are you?"], return_tensors="pt")
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            start = torch.tensor([[model.config.decoder_start_token_id]])
            logits = model(**batch, decoder_input_ids=start).logits
        else:
            logits = model(**batch).logits
    assert logits.shape[-1] == len(tokenizer)
    assert torch.isfinite(logits).all()

    generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert generated.shape[-1] > 1


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_generation_config_stops_at_end_of_turn_and_pads(built, arch):
    tokenizer = AutoTokenizer.from_pretrained(built[arch])
    generation = json.loads((built[arch] / "generation_config.json").read_text())
    assert set(generation["eos_token_id"]) == {
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.eos_token_id,
    }
    assert generation["pad_token_id"] == tokenizer.pad_token_id


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_saved_tokenizer_round_trips_any_text(built, arch):
    tokenizer = AutoTokenizer.from_pretrained(built[arch])
    in_memory = train_tokenizer(builtin_corpus())
    ids = tokenizer(ROUND_TRIP, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == ROUND_TRIP
    # The reloaded tokenizer splits text exactly like the one that was trained.
    assert ids == in_memory(ROUND_TRIP, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<|im_end|>"  # one token, not "<", "|", ...
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == ROUND_TRIP.replace("<|im_end|>", "")


def test_chat_template_marks_the_assistant_reply_and_its_stop_token(built):
    tokenizer = AutoTokenizer.from_pretrained(built["llama"])
    conversation = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "are we still on for tonight?"},
        {"role": "assistant", "content": "yes! see you at 7"},
    ]
    out = tokenizer.apply_chat_template(conversation, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == "yes! see you at 7<|im_end|>"
    prompt = tokenizer.apply_chat_template(conversation[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nare we still on for tonight?<|im_end|>\n<|im_start|>assistant\n")


def test_same_seed_same_files_other_seed_other_weights(tmp_path):
    corpus = builtin_corpus(120)
    first = build_tiny_model(tmp_path / "a", corpus=corpus, seed=3)
    again = build_tiny_model(tmp_path / "b", corpus=corpus, seed=3)
    other = build_tiny_model(tmp_path / "c", corpus=corpus, seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()
    assert (first / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()


def test_building_leaves_the_callers_random_state_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(tmp_path / "m", corpus=builtin_corpus(60), seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_tokenizer_learns_the_corpus_vocabulary():
    tokenizer = train_tokenizer(["supercalifragilistic is my word"] * 50 + builtin_corpus(), vocab_size=1000)
    assert len(tokenizer("supercalifragilistic", add_special_tokens=False)["input_ids"]) == 1
    assert len(tokenizer) <= 1000


def test_default_corpus_reads_the_bundled_persona_sample_only(tmp_path, monkeypatch):
    rows = [
        {
            "prompt": [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "oat latte?"}],
            "completion": [{"role": "assistant", "content": "always, extra hot"}],
        },
        {"text": "closing shift again"},
    ]
    (tmp_path / "sam_persona.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    # Another sample file beside it must not change the corpus (and so every offline-tiny tokenizer).
    (tmp_path / "knowledge_heldout.jsonl").write_text(json.dumps({"text": "unrelated words"}) + "\n")
    monkeypatch.setattr(tiny, "SAMPLES_DIR", tmp_path)
    assert default_corpus() == ["You are Sam.", "oat latte?", "always, extra hot", "closing shift again"]


def test_default_corpus_falls_back_to_built_in_chat_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(tiny, "SAMPLES_DIR", tmp_path / "missing")
    corpus = default_corpus()
    assert corpus == builtin_corpus()
    assert len(corpus) == 300 and len(set(corpus)) > 60
    assert all("{" not in line for line in corpus)  # every placeholder was filled


def test_broken_sample_line_names_the_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "sam_persona.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    monkeypatch.setattr(tiny, "SAMPLES_DIR", tmp_path)
    with pytest.raises(UserError, match=r"^sam_persona\.jsonl line 2: not valid JSON"):
        default_corpus()


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="^arch: unknown 'bert'"):
        build_tiny_model(tmp_path, arch="bert")
    with pytest.raises(UserError, match="^corpus: "):
        build_tiny_model(tmp_path, corpus=["", ""])
    assert not any(tmp_path.iterdir())  # nothing half-written
