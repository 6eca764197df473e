"""Chat templates and the loss mask: what the preview shows is exactly what TRL trains on."""

from __future__ import annotations

import pytest
from tokenizers import processors

from training.errors import UserError
from training.templates import (
    FALLBACK_STOP_STRINGS,
    FALLBACK_TEMPLATES,
    ensure_chat_template,
    length_stats,
    render_loss_mask,
    tokenize_row,
)
from training.tiny import build_tiny_model, builtin_corpus, train_tokenizer

EOS = "<|endoftext|>"


def chat(completion: str, *prompt: tuple[str, str]) -> dict:
    return {
        "prompt": [{"role": role, "content": content} for role, content in prompt],
        "completion": [{"role": "assistant", "content": completion}],
    }


CHAT_ROWS = [
    chat("good thanks, café? 😀", ("system", "You are Sam, a barista."), ("user", "hey, how are you? 👋🏽")),
    chat("nothing much, you?", ("user", "hi"), ("assistant", "yo"), ("user", "sup")),
    chat("ok", ("user", "long story " * 40)),  # the prompt alone fills max_length: TRL drops it
    chat("sure, the park works for me " * 6, ("user", "want to meet at the park?")),  # reply cut short
    chat("  leading spaces\nand a newline", ("system", "Be brief."), ("user", "test")),
]
TEXT_ROWS = [
    {"text": "closing shift again, so tired"},
    {"text": "already ends with eos" + EOS},
    {"text": "a very long diary entry " * 30},
    {"text": "emoji ☕️ and accents: crème brûlée"},
]
MAX_LENGTH = 64

# What each fallback trains for a reply: the reply, its stop marker, and any turn separator
# after it (prompt-completion trains everything after the prompt).
TRAINED_TEXT = {
    "chatml": "{}<|im_end|>\n",
    "alpaca": "{}" + EOS + "\n\n",
    "openchatkit": " {}" + EOS + "\n",
    "question_answer": " {}" + EOS,
    "mistral_inst": " {}" + EOS,
}
# What {% generation %} marks (TRL's assistant_only_loss): the reply and its stop marker.
ASSISTANT_TEXT = {
    "chatml": "{}<|im_end|>",
    "alpaca": "{}" + EOS,
    "openchatkit": " {}" + EOS,
    "question_answer": " {}" + EOS,
    "mistral_inst": " {}" + EOS,
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", corpus=builtin_corpus())


@pytest.fixture
def tokenizer():
    return train_tokenizer(builtin_corpus())


def with_template(name: str):
    tokenizer = train_tokenizer(builtin_corpus())
    assert ensure_chat_template(tokenizer, name, replace=True) == name
    return tokenizer


def trl_prepared(model_dir, tokenizer, rows, tmp_path, max_length):
    """The rows as TRL's SFTTrainer prepares them: (input_ids, completion mask from labels)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(output_dir=str(tmp_path / "trl"), max_length=max_length, use_cpu=True, bf16=False, report_to=[])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    return [(ex["input_ids"], [int(label != -100) for label in ex["labels"]]) for ex in trainer.train_dataset]


def ours(tokenizer, rows, max_length):
    """Our rows, minus the ones TRL drops (no trained token left)."""
    results = [tokenize_row(tokenizer, row, max_length) for row in rows]
    return [(r["input_ids"], r["completion_mask"]) for r in results if any(r["completion_mask"])]


# Seed 002's format verbatim: the generation prompt ends with a space that the reply's first
# token absorbs, so the tokenized prompt is not a prefix of prompt+completion.
SPACE_BEFORE_REPLY = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ m['content'] + eos_token + '\\n' }}"
    "{% else %}{{ '<human>: ' + m['content'] + '\\n<bot>: ' }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize(
    "template",
    ["tokenizer", "mistral_inst", "openchatkit", pytest.param(SPACE_BEFORE_REPLY, id="space-before-reply")],
)
@pytest.mark.parametrize("max_length", [MAX_LENGTH, None])
def test_tokenize_row_equals_trl_for_chat_rows(tiny_dir, tmp_path, template, max_length):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    if template in FALLBACK_TEMPLATES:
        ensure_chat_template(tokenizer, template, replace=True)
    elif template != "tokenizer":
        tokenizer.chat_template = template
    expected = trl_prepared(tiny_dir, tokenizer, CHAT_ROWS, tmp_path, max_length)
    assert ours(tokenizer, CHAT_ROWS, max_length) == expected
    assert len(expected) == (len(CHAT_ROWS) - 1 if max_length else len(CHAT_ROWS))


@pytest.mark.parametrize("adds_bos", [False, True])
def test_tokenize_row_equals_trl_for_text_rows(tiny_dir, tmp_path, adds_bos):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    if adds_bos:  # like Llama tokenizers: a BOS before every text, which TRL keeps
        bos = tokenizer.convert_tokens_to_ids("<|im_start|>")
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)]
        )
    expected = trl_prepared(tiny_dir, tokenizer, TEXT_ROWS, tmp_path, MAX_LENGTH)
    assert ours(tokenizer, TEXT_ROWS, MAX_LENGTH) == expected
    assert all(all(mask) for _, mask in expected)
    assert [ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") for ids, _ in expected] == [adds_bos] * 4
    # EOS is appended once: not again to a text that already ends with it.
    short = [ids for ids, _ in expected if len(ids) < MAX_LENGTH]
    assert all(ids[-1] == tokenizer.eos_token_id and ids[-2] != tokenizer.eos_token_id for ids in short)


@pytest.mark.parametrize("name", FALLBACK_TEMPLATES)
def test_fallback_mask_covers_exactly_the_reply(name):
    tokenizer = with_template(name)
    reply = "yes! see you at 7 😀"
    row = chat(reply, ("system", "You are Sam."), ("user", "are we still on for tonight?"))
    encoded = tokenize_row(tokenizer, row)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["completion_mask"]) if m]
    assert tokenizer.decode(trained) == TRAINED_TEXT[name].format(reply)
    # The prompt ends on a token boundary, so TRL keeps the whole prompt as context.
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) == encoded["completion_mask"].index(1)
    assert "You are Sam." in prompt  # the system message is kept (folded in where the format has none)


@pytest.mark.parametrize("name", FALLBACK_TEMPLATES)
def test_fallback_generation_markers_mark_every_reply(name):
    tokenizer = with_template(name)
    conversation = chat("second reply", ("user", "first question"), ("assistant", "first reply"), ("user", "again"))
    messages = conversation["prompt"] + conversation["completion"]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    marked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    assert marked == ASSISTANT_TEXT[name].format("first reply") + ASSISTANT_TEXT[name].format("second reply")
    rendered = tokenizer.decode(out["input_ids"])
    assert rendered.count("first question") == 1 and rendered.count("again") == 1
    assert any(stop in rendered for stop in FALLBACK_STOP_STRINGS[name])


def test_ensure_chat_template_keeps_the_tokenizers_own(tokenizer):
    own = tokenizer.chat_template
    assert ensure_chat_template(tokenizer, "alpaca") == "tokenizer"
    assert tokenizer.chat_template == own
    tokenizer.chat_template = None
    assert ensure_chat_template(tokenizer, "openchatkit") == "openchatkit"
    assert tokenizer.chat_template == FALLBACK_TEMPLATES["openchatkit"]
    with pytest.raises(UserError, match="^template: unknown 'vicuna'; expected one of chatml, alpaca"):
        ensure_chat_template(tokenizer, "vicuna")


def test_loss_mask_segments_rebuild_the_text_and_train_only_the_reply(tokenizer):
    row = CHAT_ROWS[0]
    segments = render_loss_mask(tokenizer, row)
    rendered = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    assert "".join(text for text, _ in segments) == rendered
    assert segments == [
        (rendered[: -len("good thanks, café? 😀<|im_end|>\n")], None),
        ("good thanks, café? 😀<|im_end|>\n", "trained"),
    ]


def test_loss_mask_keeps_characters_split_across_tokens_whole(tokenizer):
    # Emoji are several byte-level tokens; a cut inside one would show replacement characters.
    segments = render_loss_mask(tokenizer, {"text": "☕️👋🏽"}, max_length=3)
    assert "".join(text for text, _ in segments) == "☕️👋🏽" + EOS
    assert [label for _, label in segments] == ["trained", "cut off"]
    assert "\ufffd" not in "".join(text for text, _ in segments)


def test_loss_mask_flags_what_max_length_cuts_off(tokenizer):
    row = CHAT_ROWS[3]
    full = tokenize_row(tokenizer, row)["input_ids"]
    segments = render_loss_mask(tokenizer, row, max_length=MAX_LENGTH)
    assert [label for _, label in segments] == [None, "trained", "cut off"]
    cut_text = segments[-1][0]
    assert cut_text.endswith("<|im_end|>\n")
    assert len(tokenizer(cut_text, add_special_tokens=False)["input_ids"]) == len(full) - MAX_LENGTH
    assert render_loss_mask(tokenizer, CHAT_ROWS[2], max_length=MAX_LENGTH)[-1][1] == "cut off"


def test_loss_mask_shows_a_bos_the_tokenizer_adds(tokenizer):
    bos = tokenizer.convert_tokens_to_ids("<|im_start|>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)]
    )
    assert render_loss_mask(tokenizer, {"text": "hi there"}) == [("<|im_start|>hi there" + EOS, "trained")]


class WithoutOffsets:
    """A tokenizer that cannot report character offsets, like transformers' Python tokenizers."""

    is_fast = False

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        assert not kwargs.get("return_offsets_mapping")
        return self._tokenizer(*args, **kwargs)


def test_loss_mask_without_offsets_decodes_each_run(tokenizer):
    row = CHAT_ROWS[1]
    rendered = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    segments = render_loss_mask(WithoutOffsets(tokenizer), row, max_length=42)
    assert "".join(text for text, _ in segments) == rendered
    assert [label for _, label in segments] == [None, "trained", "cut off"]
    assert segments == render_loss_mask(tokenizer, row, max_length=42)


def test_length_stats_on_rows_of_known_length(tokenizer):
    # Each special token is one token, and every text row gains one EOS: lengths 2..11.
    rows = [{"text": "<|im_start|>" * k} for k in range(1, 11)]
    stats = length_stats(tokenizer, rows, max_length=8)
    assert {k: stats[k] for k in ("count", "mean", "median", "max", "over_max", "dropped")} == {
        "count": 10,
        "mean": 6.5,
        "median": 6.5,
        "max": 11,
        "over_max": 3,
        "dropped": 0,
    }
    assert stats["p90"] == pytest.approx(10.1) and stats["p99"] == pytest.approx(10.91)
    assert stats["trained_tokens"] == sum(range(2, 9)) + 3 * 8
    assert stats["histogram"] == [(n, n + 1, 0 if n < 2 else 1) for n in range(12)]


def test_length_stats_agree_with_tokenize_row_on_mixed_rows(tokenizer):
    rows = CHAT_ROWS + TEXT_ROWS
    stats = length_stats(tokenizer, rows, MAX_LENGTH)
    encoded = [tokenize_row(tokenizer, row) for row in rows]
    lengths = [len(e["input_ids"]) for e in encoded]
    assert stats["count"] == len(rows) and stats["max"] == max(lengths)
    assert stats["over_max"] == sum(n > MAX_LENGTH for n in lengths)
    assert stats["trained_tokens"] == sum(sum(e["completion_mask"][:MAX_LENGTH]) for e in encoded)
    assert stats["dropped"] == 1
    assert sum(count for _, _, count in stats["histogram"]) == len(rows)
    assert len(stats["histogram"]) <= 20


def test_length_stats_tokenize_at_most_the_character_budget(tokenizer):
    # A preview over 3 MB of text measures only the leading rows within the budget (2 MB): the
    # cost of a histogram is bounded whatever was uploaded, and the count says how many were measured.
    rows = [chat("ok " * 33_000, ("user", f"row {n}")) for n in range(30)]  # ~99,000 characters each
    stats = length_stats(tokenizer, rows, MAX_LENGTH)
    assert stats["count"] == 20 and sum(count for *_, count in stats["histogram"]) == 20
    assert length_stats(tokenizer, rows[:1], MAX_LENGTH, char_budget=10)["count"] == 1  # never nothing


def test_length_stats_stop_when_cancelled(tokenizer):
    import threading

    from training.cancel import Cancelled, cancellable

    cancel = threading.Event()
    cancel.set()
    with cancellable(cancel), pytest.raises(Cancelled, match="cancelled"):
        length_stats(tokenizer, CHAT_ROWS, MAX_LENGTH)
    assert length_stats(tokenizer, CHAT_ROWS, MAX_LENGTH)["count"] == len(CHAT_ROWS)  # outside the scope: no effect


def test_length_stats_of_nothing(tokenizer):
    stats = length_stats(tokenizer, [], 128)
    assert stats["count"] == 0 and stats["trained_tokens"] == 0 and stats["histogram"] == []


@pytest.mark.parametrize(
    "row, message",
    [
        ({"messages": []}, r"^row: expected 'prompt'\+'completion' messages .* got keys \['messages'\]$"),
        ({"prompt": [{"role": "user", "content": "hi"}]}, r"^row: 'completion' must be a non-empty list"),
        ({"prompt": "hi", "completion": "yo"}, r"^row: 'prompt' must be a non-empty list of \{role, content\}"),
        ("just text", r"^row: expected a dict"),
    ],
)
def test_malformed_rows_are_user_errors(tokenizer, row, message):
    with pytest.raises(UserError, match=message):
        tokenize_row(tokenizer, row)


def test_length_stats_names_the_bad_row(tokenizer):
    with pytest.raises(UserError, match=r"^row 2: 'completion' must be"):
        length_stats(tokenizer, [TEXT_ROWS[0], {"prompt": CHAT_ROWS[0]["prompt"], "completion": []}], 64)


def test_rows_from_a_mixed_table_count_none_as_absent(tokenizer):
    # datasets fills the other kind's columns with None when chat and text rows share a table.
    mixed = {"text": TEXT_ROWS[0]["text"], "prompt": None, "completion": None}
    assert tokenize_row(tokenizer, mixed) == tokenize_row(tokenizer, TEXT_ROWS[0])


def test_missing_template_is_a_user_error(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="^chat template: "):
        tokenize_row(tokenizer, CHAT_ROWS[1])
