"""Chat generation on tiny local models: determinism, seeds, streaming, cancel, base vs tuned, trimming."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from collections import Counter

import pytest
import torch

from training.chat.decoding import PRESETS, DecodingSettings, preset
from training.chat.generate import (
    PROBE_PROMPTS,
    build_prompt,
    clear_model_cache,
    load_chat_model,
    reply,
    split_bubbles,
    stream_reply,
)
from training.cli import build_parser
from training.errors import UserError
from training.tiny import build_tiny_model
from training.train.config import RunConfig

SYSTEM = "You are Sam. Reply the way Sam texts."
PERSONA_REPLY = "haha yes see you at the park tonight"
GREEDY = DecodingSettings(max_new_tokens=24)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="module")
def run_dir(tiny_dir, tmp_path_factory):
    """A run folder as the trainer leaves it: config.yaml + final/ LoRA adapter and tokenizer.

    The adapter is trained with plain peft + AdamW for a few dozen steps to always answer one line.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_dir),
            LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]),
        )
        texts = [
            tokenizer.apply_chat_template(
                [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": PERSONA_REPLY},
                ],
                tokenize=False,
            )
            for question in ("are we still on for tonight?", "want to meet later?", "hey what's up")
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(50):
            model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    run = tmp_path_factory.mktemp("runs") / "sam"
    model.save_pretrained(run / "final")
    tokenizer.save_pretrained(run / "final")
    RunConfig(name="sam", model=str(tiny_dir), system_prompt=SYSTEM).save(run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def tuned(run_dir):
    return load_chat_model(run_dir, device="cpu")


@pytest.fixture(scope="module")
def base(tiny_dir):
    return load_chat_model(tiny_dir, device="cpu")


def worker_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "talklike-generate"]


# ---- settings, bubbles, probes ---------------------------------------------------------------------


def test_settings_validation_names_the_field_and_coerces_ui_numbers():
    for bad, field in [
        (dict(temperature=0), "temperature"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(repetition_penalty=0), "repetition_penalty"),
        (dict(no_repeat_ngram_size=2.5), "no_repeat_ngram_size"),
        (dict(seed=-3), "seed"),
        (dict(temperature="hot"), "temperature"),
    ]:
        with pytest.raises(UserError, match=rf"^{field}: "):
            DecodingSettings(**bad).validate()
    settings = DecodingSettings(top_k=3.0, max_new_tokens=16.0, seed=None).validate()
    assert (settings.top_k, settings.max_new_tokens, settings.seed) == (3, 16, None)
    assert set(PRESETS) == {"Greedy", "Balanced", "Creative"}
    assert not PRESETS["Greedy"].do_sample and PRESETS["Creative"].no_repeat_ngram_size == 3
    assert preset("Balanced", seed=7).seed == 7 and PRESETS["Balanced"].seed == 0  # presets stay unchanged
    with pytest.raises(UserError, match="^preset: unknown 'Wild'"):
        preset("Wild")


def test_split_bubbles_one_bubble_per_message():
    assert split_bubbles("hey | how are you?|| see you", "|") == ["hey", "how are you?", "see you"]
    assert split_bubbles("lol\n\nok\n", "\n") == ["lol", "ok"]
    assert split_bubbles("  ", "\n") == []


def test_probe_prompts_cover_the_out_of_format_checks():
    prompts = [probe.prompt for probe in PROBE_PROMPTS]
    assert "The earth is filled with wonder" in prompts
    assert any("light" in prompt for prompt in prompts) and any("Python" in prompt for prompt in prompts)


# ---- determinism and settings ---------------------------------------------------------------------


def test_greedy_is_deterministic(tuned):
    first = reply(tuned, [], "are we still on for tonight?", GREEDY)
    assert first and first == reply(tuned, [], "are we still on for tonight?", GREEDY)


def test_sampling_honours_the_seed(base):
    same = [reply(base, [], "how was the trip?", preset("Creative", max_new_tokens=12, seed=11)) for _ in range(2)]
    assert same[0] and same[0] == same[1]
    others = {reply(base, [], "how was the trip?", preset("Creative", max_new_tokens=12, seed=s)) for s in range(4)}
    assert len(others) >= 3, others


def test_max_new_tokens_bounds_the_reply(base):
    short = reply(base, [], "hello", DecodingSettings(max_new_tokens=4))
    longer = reply(base, [], "hello", DecodingSettings(max_new_tokens=30))
    assert longer.startswith(short) and len(short) < len(longer)
    assert len(base.tokenizer(short, add_special_tokens=False)["input_ids"]) <= 4


def test_repetition_settings_change_the_reply(base):
    def most_repeated(text: str) -> int:
        return max(Counter(base.tokenizer(text, add_special_tokens=False)["input_ids"]).values())

    plain = reply(base, [], "hello", DecodingSettings(max_new_tokens=30))
    assert most_repeated(plain) >= 4  # a random model falls into a loop
    assert most_repeated(reply(base, [], "hello", DecodingSettings(max_new_tokens=30, no_repeat_ngram_size=1))) <= 2
    assert reply(base, [], "hello", DecodingSettings(max_new_tokens=30, repetition_penalty=5.0)) != plain


# ---- streaming and cancel -------------------------------------------------------------------------


def test_stream_yields_growing_text_ending_in_the_reply(tuned):
    parts = list(stream_reply(tuned, [], "want to meet later?", GREEDY))
    assert len(parts) >= 3
    assert all(later.startswith(earlier) and later != earlier for earlier, later in zip(parts, parts[1:], strict=False))
    assert parts[-1] == reply(tuned, [], "want to meet later?", GREEDY)
    assert not worker_threads()


def test_streamed_text_is_exactly_what_generate_decodes(base):
    for settings in (DecodingSettings(max_new_tokens=40), preset("Creative", max_new_tokens=40, seed=2)):
        prompt = build_prompt(base, [], "hello there", settings.max_new_tokens)
        inputs = torch.tensor([prompt.input_ids])
        torch.manual_seed(settings.seed)
        sampling = dict(temperature=1.0, top_p=0.95, top_k=0) if settings.do_sample else {}
        output = base.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=40,
            do_sample=settings.do_sample,
            repetition_penalty=settings.repetition_penalty,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            **sampling,
        )
        expected = base.tokenizer.decode(output[0, inputs.shape[1] :], skip_special_tokens=True).strip()
        assert reply(base, [], "hello there", settings) == expected


def test_cancel_stops_generation_early(base):
    settings = preset("Creative", max_new_tokens=300, seed=3)
    full = reply(base, [], "tell me everything", settings)
    cancel = threading.Event()
    parts = []
    for text in stream_reply(base, [], "tell me everything", settings, cancel=cancel):
        parts.append(text)
        cancel.set()
    assert parts and len(parts[-1]) < len(full) / 3
    assert not worker_threads()


def test_cancel_while_queued_behind_another_reply_gives_up_without_generating(base):
    cancel, results = threading.Event(), []
    with base.lock:  # another request is generating
        consumer = threading.Thread(target=lambda: results.append(list(stream_reply(base, [], "hi", cancel=cancel))))
        consumer.start()
        time.sleep(0.2)
        cancel.set()
        consumer.join(timeout=5)
        assert not consumer.is_alive() and results == [[]]
    assert not worker_threads()


def test_closing_the_stream_ends_the_worker_thread(base):
    stream = stream_reply(base, [], "tell me everything", preset("Creative", max_new_tokens=2000))
    next(stream)
    started = time.perf_counter()
    stream.close()
    assert not worker_threads() and time.perf_counter() - started < 5


# ---- base vs tuned with one copy of the weights ----------------------------------------------------


def test_base_and_tuned_differ_and_base_matches_the_plain_model(tuned, base):
    # The plain model has no system prompt of its own: give it the run's, as the UI's system box would.
    with_system = [{"role": "system", "content": SYSTEM}]
    for settings in (GREEDY, preset("Balanced", max_new_tokens=20, seed=5)):
        tuned_reply = reply(tuned, [], "are we still on for tonight?", settings)
        base_reply = reply(tuned, [], "are we still on for tonight?", settings, use_adapter=False)
        assert tuned_reply != base_reply
        assert base_reply == reply(base, with_system, "are we still on for tonight?", settings)
    assert reply(tuned, [], "how was the trip?", GREEDY) == PERSONA_REPLY  # the adapter is in use


def test_interleaved_requests_give_the_same_replies_as_one_at_a_time(tuned):
    settings = preset("Balanced", max_new_tokens=16, seed=9)
    expected = {flag: reply(tuned, [], "hey what's up", settings, use_adapter=flag) for flag in (True, False)}
    results: dict[tuple[bool, int], str] = {}

    def ask(flag: bool, index: int) -> None:
        results[(flag, index)] = reply(tuned, [], "hey what's up", settings, use_adapter=flag)

    threads = [threading.Thread(target=ask, args=(flag, i)) for i in range(3) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(text == expected[flag] for (flag, _), text in results.items()) and len(results) == 6


def test_base_needs_an_adapter(base):
    with pytest.raises(UserError, match="^base model: .* has no adapter"):
        reply(base, [], "hi", GREEDY, use_adapter=False)


# ---- prompts and history ----------------------------------------------------------------------------


def test_run_folder_chats_with_the_runs_system_prompt_and_template(tuned, run_dir):
    prompt = build_prompt(tuned, [], "hi there")
    assert prompt.text == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tuned.has_adapter and tuned.name == "sam" and tuned.separator == "\n"
    # final/ is the same run: the cache gives the loaded model back
    assert load_chat_model(run_dir / "final", device="cpu") is load_chat_model(run_dir, device="cpu")


def test_run_without_a_system_prompt_uses_the_one_in_its_training_data(run_dir, tmp_path):
    shutil.copytree(run_dir / "final", tmp_path / "jo" / "final")
    data = tmp_path / "train.jsonl"
    rows = {
        "prompt": [{"role": "system", "content": "You are Jo."}, {"role": "user", "content": "hi"}],
        "messages": [{"role": "system", "content": "You are Jo."}, {"role": "assistant", "content": "hey"}],
    }
    for shape, messages in rows.items():  # prompt/completion rows and messages rows
        data.write_text(json.dumps({shape: messages}) + "\n", encoding="utf-8")
        RunConfig(name="jo", model="offline-tiny", train_file=str(data)).save(tmp_path / "jo" / "config.yaml")
        model = load_chat_model(tmp_path / "jo", device="cpu")
        assert model.prompt.system_prompt == "You are Jo." and model.has_adapter
        clear_model_cache()


def test_history_bubbles_and_gradio_parts_become_one_turn(tuned):
    history = [
        {"role": "user", "content": [{"type": "text", "text": "are you coming?"}]},
        {"role": "assistant", "content": "yes"},
        {"role": "assistant", "content": "on my way"},
        {"role": "assistant", "content": {"path": "photo.jpg"}},  # a file bubble: not text, left out
    ]
    messages = build_prompt(tuned, history, "great").messages
    assert [m["content"] for m in messages[1:]] == ["are you coming?", "yes\non my way", "great"]


def test_long_history_keeps_the_newest_turns_that_fit(tuned):
    history = []
    for index in range(400):
        history += [
            {"role": "user", "content": f"message {index}: are we still going to the park later?"},
            {"role": "assistant", "content": f"reply {index}: yes, see you at seven"},
        ]
    prompt = build_prompt(tuned, history, "latest question", max_new_tokens=100)
    kept = prompt.messages[1:]
    assert prompt.messages[0]["content"] == SYSTEM and kept[0]["role"] == "user"
    assert kept == [*history[-(len(kept) - 1) :], {"role": "user", "content": "latest question"}]
    assert len(prompt.input_ids) <= 2048 - 100
    one_more_exchange = prompt.messages[:1] + history[-len(kept) - 1 :] + kept[-1:]
    text = tuned.tokenizer.apply_chat_template(one_more_exchange, tokenize=False, add_generation_prompt=True)
    assert len(tuned.tokenizer(text, add_special_tokens=False)["input_ids"]) > 2048 - 100
    assert 20 < len(kept) < 200
    assert isinstance(reply(tuned, history, "latest question", DecodingSettings(max_new_tokens=3)), str)


def test_a_message_too_long_for_the_context_is_a_user_error(tuned):
    with pytest.raises(UserError, match="^message: too long"):
        build_prompt(tuned, [], "word " * 3000, max_new_tokens=10)
    with pytest.raises(UserError, match="^max_new_tokens: 4000 leaves no room"):
        build_prompt(tuned, [], "hi", max_new_tokens=4000)


def test_seq2seq_blenderbot_replies_to_the_joined_turns(tmp_path):
    folder = build_tiny_model(tmp_path / "blenderbot", arch="blenderbot")
    model = load_chat_model(folder, device="cpu")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo\nsup"}]
    assert model.seq2seq and build_prompt(model, history, "how are you?").text == "hi|yo|sup|how are you?"
    text = reply(model, history, "how are you?", preset("Creative", max_new_tokens=12, seed=1))
    assert text and text == reply(model, history, "how are you?", preset("Creative", max_new_tokens=12, seed=1))
    assert len(list(stream_reply(model, history, "how are you?", preset("Creative", max_new_tokens=12, seed=1)))) >= 2


def test_fallback_template_end_marker_stops_the_reply(tmp_path, base):
    from transformers import AutoTokenizer

    from training.chat.generate import _before_stop
    from training.templates import FALLBACK_TEMPLATES

    folder = build_tiny_model(tmp_path / "openchatkit")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = FALLBACK_TEMPLATES["openchatkit"]  # seed 002's "<human>: / <bot>:" format
    tokenizer.save_pretrained(folder)
    model = load_chat_model(folder, device="cpu")
    assert model.stop_strings == ["<human>:"] and base.stop_strings == []  # <|im_end|> is an EOS token already
    assert build_prompt(model, [], "hi").text == "<human>: hi\n<bot>:"
    assert _before_stop(" sure thing\n<hum", ["<human>:"]) == ("sure thing", False)  # a partial marker is held back
    assert _before_stop(" sure thing\n<human>: and", ["<human>:"]) == ("sure thing", True)
    assert isinstance(reply(model, [], "hi", DecodingSettings(max_new_tokens=8)), str)


# ---- loading errors and cache -------------------------------------------------------------------------


def test_missing_or_wrong_sources_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_chat_model(tmp_path / "nope")
    with pytest.raises(UserError, match="^model 'someone/not-a-model': cannot load it as a Hub id"):
        load_chat_model("someone/not-a-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run, adapter or model folder"):
        load_chat_model(tmp_path / "empty")
    RunConfig(name="unfinished", model="offline-tiny").save(tmp_path / "unfinished" / "config.yaml")
    with pytest.raises(UserError, match="^unfinished: this run has no final/ model yet"):
        load_chat_model(tmp_path / "unfinished")
    with pytest.raises(UserError, match="^model: empty"):
        load_chat_model("  ")


def test_cache_reuses_a_loaded_model_until_its_files_change(tiny_dir, tmp_path):
    copy = build_tiny_model(tmp_path / "copy")
    first = load_chat_model(copy, device="cpu")
    assert load_chat_model(str(copy), device="cpu") is first
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert load_chat_model(copy, device="cpu") is not first


# ---- command line ---------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["chat", *argv])


def run_chat_command(args: argparse.Namespace) -> None:
    args.handler(args)


def test_cli_prints_the_reply(run_dir, tuned, capsys):
    run_chat_command(parse([str(run_dir), "--prompt", "hey what's up", "--greedy", "--max-new-tokens", "24"]))
    assert capsys.readouterr().out == reply(tuned, [], "hey what's up", GREEDY) + "\n"
    run_chat_command(
        parse(
            [
                str(run_dir),
                "--prompt",
                "hey what's up",
                "--base",
                "--temperature",
                "0.8",
                "--seed",
                "4",
                "--max-new-tokens",
                "10",
            ]
        )
    )
    expected = reply(tuned, [], "hey what's up", preset("Balanced", temperature=0.8, seed=4, max_new_tokens=10), False)
    assert capsys.readouterr().out == expected + "\n"


def test_cli_rejects_greedy_with_sampling_flags(run_dir):
    with pytest.raises(UserError, match="^--greedy and --temperature: choose one"):
        run_chat_command(parse([str(run_dir), "--prompt", "hi", "--greedy", "--temperature", "0.5"]))
