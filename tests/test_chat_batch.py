"""Batched replies (chat --prompts, the report): the chat tab's greedy replies, several prompts per generate call."""

from __future__ import annotations

import threading

import pytest

from tests.export_runs import adapter_run
from training.chat.batch import generate_batch
from training.chat.decoding import DecodingSettings
from training.chat.generate import load_chat_model, reply
from training.errors import UserError

REQUESTS = [
    ([], "hey are you coming tonight?"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "what's up"),
    ([{"role": "system", "content": "You are Sam."}], "lol did you see that, the thing at the park with the dog"),
    ([], "ok"),
    ([{"role": "user", "content": "so"}, {"role": "assistant", "content": "so?"}], "tell me about your day please"),
]
GREEDY = DecodingSettings(max_new_tokens=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.mark.parametrize("arch", ["llama", "blenderbot"])
def test_greedy_batches_give_the_chat_tabs_replies(tmp_path_factory, arch):
    model = load_chat_model(adapter_run(tmp_path_factory, arch=arch).path)
    for use_adapter in (True, False):
        one_by_one = [reply(model, history, message, GREEDY, use_adapter) for history, message in REQUESTS]
        batched = generate_batch(model, REQUESTS, GREEDY, use_adapter, batch_size=3)  # padded, and two batches
        assert batched == one_by_one, (arch, use_adapter)


def test_sampled_batches_repeat_with_the_seed_and_base_differs(tmp_path_factory):
    model = load_chat_model(adapter_run(tmp_path_factory).path)
    sampled = DecodingSettings(do_sample=True, temperature=1.0, max_new_tokens=12, seed=3)
    first = generate_batch(model, REQUESTS, sampled)
    assert generate_batch(model, REQUESTS, sampled) == first
    assert generate_batch(model, REQUESTS, sampled, use_adapter=False) != first


def test_a_cancelled_batch_returns_nothing(tmp_path_factory):
    model = load_chat_model(adapter_run(tmp_path_factory).path)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(UserError, match="stopped after 0 of 5 replies"):
        generate_batch(model, REQUESTS, GREEDY, cancel=cancel)
