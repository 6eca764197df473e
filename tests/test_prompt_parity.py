"""Train/serve parity: the prompt chat builds for a history is, token for token, the prompt trained on.

The sample persona (Sam Rivera: one-to-one chats and a group chat) is prepared with "\\n" and with "|"
between the messages of a turn, a causal model (the tokenizer's own ChatML template) and a seq2seq
BlenderBot train one step on it through the real trainer, and then every reply of Sam's, held-out
conversations included, is asked again through the chat path from its raw messages: the history up to
that reply, one message per bubble, with names on other people's messages in the group chat.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.chat.generate import build_prompt, clear_model_cache, load_chat_model, split_bubbles
from training.cli import build_parser
from training.data.formats import load
from training.data.persona import prepare, save, split_sessions
from training.data.shaping import DEFAULT_SYSTEM_PROMPT, ShapingOptions
from training.tiny import build_tiny_model
from training.train.config import RunConfig
from training.train.dataset import causal_dataset, load_rows, seq2seq_dataset
from training.train.run_record import read_run
from training.train.trainer import train

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"
ME = "Sam Rivera"
MAX_NEW_TOKENS = 64


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_generate: a second thread only waits on these tiny models
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def imported():
    return load([str(SAMPLE)])


@pytest.fixture(scope="module", params=["\n", "|"], ids=["newline", "pipe"])
def dataset(request, imported, tmp_path_factory):
    # context_turns 3 makes the window cut many prompts; no dedup, so every reply of Sam's is a row.
    options = ShapingOptions(
        me=ME,
        separator=request.param,
        context_turns=3,
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        dedup=False,
        val_fraction=0.2,
    )
    train_file, validation_file = save(prepare(imported, options), tmp_path_factory.mktemp("data") / "sam.jsonl")
    return options, train_file, validation_file


@pytest.fixture(scope="module", params=["llama", "blenderbot"])
def run(request, dataset, tmp_path_factory):
    """A run trained one step by the trainer, as the Train tab starts it; returns (options, run folder, config)."""
    options, train_file, validation_file = dataset
    folder = tmp_path_factory.mktemp("run")
    model = build_tiny_model(folder / "model", arch=request.param)
    config = RunConfig(
        name="sam",
        model=str(model),
        method="lora",
        lora_r=4,
        target_modules="all-linear",
        max_steps=1,
        batch_size=8,
        max_length=512,
        train_file=str(train_file),
        validation_file=str(validation_file),
        output_dir=str(folder / "sam"),
        system_prompt="",
        dtype="fp32",
    )
    status = train(config)
    assert status["state"] == "completed", status
    yield options, folder / "sam", config
    clear_model_cache()


def chat_histories(imported, options: ShapingOptions):
    """Each reply of mine as chat would be asked for it: the session's messages before my turn, in OpenAI form."""
    for conversation in imported.conversations:
        for session in split_sessions(conversation.messages, options.gap_minutes * 60):
            for index, message in enumerate(session):
                if message.sender != ME or index == 0 or session[index - 1].sender == ME:
                    continue  # not the start of my turn, or my turn opens the conversation (no example)
                yield [_as_chat(earlier, conversation.is_group) for earlier in session[:index]]


def _as_chat(message, group: bool) -> dict:
    if message.sender == ME:
        return {"role": "assistant", "content": message.text}
    return {"role": "user", "content": message.text, **({"name": message.sender} if group else {})}


def trained_prompts(run_dir: Path, config: RunConfig, options: ShapingOptions, model) -> tuple[list, list]:
    """The encoder input (seq2seq) or the tokens before the first trained one (causal) of every row, as
    the trainer prepares them: training rows and held-out rows."""
    rows = load_rows(config)
    prompts = []
    for split in (rows.train, rows.validation):
        if model.seq2seq:
            dataset, _ = seq2seq_dataset(model.tokenizer, split, config, separator=options.separator)
            prompts.append([tuple(item["input_ids"]) for item in dataset])
        else:
            dataset, _ = causal_dataset(model.tokenizer, split, config)
            prompts.append([tuple(item["input_ids"][: item["completion_mask"].index(1)]) for item in dataset])
    return prompts[0], prompts[1]


def test_chat_builds_every_training_prompt_token_for_token(run, imported):
    options, run_dir, config = run
    model = load_chat_model(run_dir, device="cpu")
    train_prompts, held_out_prompts = trained_prompts(run_dir, config, options, model)
    histories = list(chat_histories(imported, options))
    chat_prompts = [
        tuple(build_prompt(model, history[:-1], history[-1], MAX_NEW_TOKENS).input_ids) for history in histories
    ]

    assert held_out_prompts and any("name" in message for history in histories for message in history)  # a group
    assert sorted(chat_prompts) == sorted(train_prompts + held_out_prompts)
    # the persona's separator reached chat through the manifest, and replies split into bubbles on it
    assert (
        model.separator == options.separator and read_run(run_dir).manifest["prompt"]["separator"] == options.separator
    )
    assert split_bubbles(f"omw{options.separator}5 min", model.separator) == ["omw", "5 min"]


def test_print_prompt_shows_what_the_model_receives_and_does_not_reply(run, capsys):
    options, run_dir, _ = run
    model = load_chat_model(run_dir, device="cpu")
    args = build_parser().parse_args(["chat", str(run_dir), "--prompt", "you up?", "--print-prompt"])
    args.handler(args)
    printed = capsys.readouterr().out
    assert printed == build_prompt(model, [], "you up?", 128).text + "\n"
    if not model.seq2seq:  # the system prompt the data was made with, in the model's own template
        assert printed.startswith(f"<|im_start|>system\nYou are {ME}. Reply the way {ME} texts.<|im_end|>\n")
        assert printed.endswith("<|im_start|>user\nyou up?<|im_end|>\n<|im_start|>assistant\n\n")
    else:
        assert printed == "you up?\n"
