"""The OpenAI-compatible endpoint, driven by the `openai` Python client against the running app:
the same replies as the library, streamed as the client reads them, behind the API key, inside the
chat page's limits."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

import app
from tests.export_runs import adapter_run
from tests.ui_client import free_port
from training.chat import decoding, generate

KEY = "sk-talklike-test-key-0123456789"
CAP = 24  # --max-new-tokens of the app under test
MESSAGE = "hey Sam, are we still on for tonight?"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture(scope="module")
def bot(run):
    """`python app.py --chat-only RUN --api-key KEY` with one reply at a time and no waiting line."""
    demo, url = app.start(
        [
            "--chat-only",
            str(run.path),
            "--api-key",
            KEY,
            "--port",
            str(free_port()),
            "--max-new-tokens",
            str(CAP),
            "--concurrency",
            "1",
            "--queue-size",
            "0",
            "--message-chars",
            "200",
            "--history-messages",
            "4",
        ]
    )
    yield url.rstrip("/")
    demo.close()


def client(url: str, key: str = KEY, address: str = "127.0.0.1") -> openai.OpenAI:
    """An OpenAI client connecting from `address` (any 127.x.y.z reaches the server; see tests/visitors.py)."""
    http = httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120)
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120, http_client=http)


def library_reply(run, history, message, **settings) -> str:
    model = generate.load_chat_model(str(run.path))
    return generate.reply(model, history, message, decoding.preset("Greedy", **settings))


def test_models_lists_the_chat_only_model_and_only_for_the_key(bot, run):
    assert [m.id for m in client(bot).models.list()] == [run.path.name]
    assert client(bot).models.retrieve(run.path.name).id == run.path.name
    with pytest.raises(openai.AuthenticationError):
        client(bot, key="sk-wrong").models.list()
    assert httpx.get(f"{bot}/v1/models").status_code == 401  # no key at all


def test_a_completion_is_the_library_reply_with_usage(bot, run):
    answer = client(bot).chat.completions.create(
        model=run.path.name, temperature=0, max_tokens=16, messages=[{"role": "user", "content": MESSAGE}]
    )
    expected = library_reply(run, [], MESSAGE, max_new_tokens=16)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == run.path.name
    assert choice.message.role == "assistant" and choice.message.content == expected
    model = generate.load_chat_model(str(run.path))
    usage: dict = {}
    list(generate.stream_reply(model, [], MESSAGE, decoding.preset("Greedy", max_new_tokens=16), usage=usage))
    assert usage["prompt_tokens"] == len(generate.build_prompt(model, [], MESSAGE, 16).input_ids)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert 0 < answer.usage.completion_tokens <= 16
    assert choice.finish_reason == ("length" if usage["completion_tokens"] == 16 else "stop")


def test_streaming_sends_the_same_reply_in_pieces_then_usage(bot, run):
    messages = [
        {"role": "user", "content": "what are you up to?"},
        {"role": "assistant", "content": "not much"},
        {"role": "user", "content": MESSAGE},
    ]
    stream = client(bot).chat.completions.create(
        model=run.path.name, messages=messages, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    model = generate.load_chat_model(str(run.path))
    steps = list(generate.stream_reply(model, messages[:2], MESSAGE, decoding.preset("Greedy", max_new_tokens=CAP)))
    assert "".join(pieces) == steps[-1]
    assert len(pieces) == len(steps)  # each update of the library's stream is sent as it comes, not in one block
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens > 0


def test_the_server_caps_the_reply_and_keeps_the_persona_prompt(bot, run):
    greedy = {"model": run.path.name, "temperature": 0}
    asked_for_more = client(bot).chat.completions.create(
        max_tokens=5000, messages=[{"role": "user", "content": MESSAGE}], **greedy
    )
    assert asked_for_more.choices[0].message.content == library_reply(run, [], MESSAGE, max_new_tokens=CAP)
    assert asked_for_more.usage.completion_tokens <= CAP
    # A bridge's own system prompt does not replace the persona's.
    with_system = client(bot).chat.completions.create(
        max_tokens=16,
        **greedy,
        messages=[{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": MESSAGE}],
    )
    assert with_system.choices[0].message.content == library_reply(run, [], MESSAGE, max_new_tokens=16)
    # Only the newest --max-history-messages (4) earlier messages are read.
    old = [{"role": r, "content": f"old message {n}"} for n, r in enumerate(["user", "assistant"] * 5)]
    long_chat = client(bot).chat.completions.create(
        max_tokens=16, **greedy, messages=[*old, {"role": "user", "content": MESSAGE}]
    )
    assert long_chat.choices[0].message.content == library_reply(run, old[-4:], MESSAGE, max_new_tokens=16)


def test_bad_requests_get_one_clear_openai_error(bot, run):
    api = client(bot)
    with pytest.raises(openai.BadRequestError, match="message: 201 characters; at most 200"):
        api.chat.completions.create(model=run.path.name, messages=[{"role": "user", "content": "x" * 201}])
    with pytest.raises(openai.NotFoundError, match="GET /v1/models lists them"):
        api.chat.completions.create(model="someone/else", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="last message must be from the user"):
        api.chat.completions.create(model=run.path.name, messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        api.chat.completions.create(model=run.path.name, temperature=9, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="only text"):
        api.chat.completions.create(
            model=run.path.name,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}
            ],
        )

    def post(body: bytes) -> httpx.Response:
        return httpx.post(
            f"{bot}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, content=body, timeout=60
        )

    # Over what the limits can use (a 200-character message, 4 earlier ones): an OpenAI-shaped 413.
    long = post(b"[" * 100_000)
    assert long.status_code == 413 and "request body over" in long.json()["error"]["message"]
    # Over the server's bound for every request of a shared page: refused before the route reads it.
    huge = post(b"[" * 5_000_000)
    assert huge.status_code == 413 and huge.json()["detail"] == "Request too large: at most 1,024 KB here."


def test_a_busy_bot_turns_requests_away_and_a_hung_up_stream_stops_generating(bot, run, monkeypatch):
    model = generate.load_chat_model(str(run.path))  # the server's copy: same process, same cache
    request = {"model": run.path.name, "messages": [{"role": "user", "content": MESSAGE}], "max_tokens": 8}
    with ThreadPoolExecutor(1) as pool:
        with model.lock:  # the model is busy: the first request waits in its one slot
            waiting = pool.submit(client(bot).chat.completions.create, **request)
            time.sleep(1.0)
            # The same address again: its one reply is in progress (the chat page's per-address bound).
            with pytest.raises(openai.RateLimitError, match="one message at a time from one address"):
                client(bot).chat.completions.create(**request)
            # Another address: the one slot is taken and nothing may wait (--queue-size 0).
            with pytest.raises(openai.RateLimitError, match="busy"):
                client(bot, address="127.0.0.2").chat.completions.create(**request)
            assert not waiting.done()
        assert waiting.result().choices[0].message.content == library_reply(run, [], MESSAGE, max_new_tokens=8)

    generated = []
    monkeypatch.setattr(
        model.model, "generate", lambda *a, _run=model.model.generate, **k: generated.append(1) or _run(*a, **k)
    )
    with model.lock:  # a client that hangs up while its reply waits: nothing is generated for it
        with httpx.stream(
            "POST",
            f"{bot}/v1/chat/completions",
            json={**request, "stream": True},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        ) as response:
            assert next(response.iter_lines()).startswith("data: ")
        time.sleep(1.0)
    deadline = time.monotonic() + 10
    while any(t.name in ("talklike-api-reply", "talklike-generate") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "generation went on after the client hung up"
        time.sleep(0.05)
    assert generated == []
    assert client(bot).chat.completions.create(**request).choices[0].message.content  # the slot is free again


def test_the_chat_page_beside_the_api_still_answers_with_no_waiting_line(bot):
    from gradio_client import Client

    from tests.ui_client import call

    _, tuned, _, _ = call(Client(bot, verbose=False), "/chat", Message=MESSAGE, **{"Max new tokens": 8})
    assert tuned[0]["role"] == "user" and len(tuned) >= 1  # --queue-size 0 still lets the one running reply in


def test_without_a_key_there_is_no_api(run):
    demo, url = app.start(["--chat-only", str(run.path), "--port", str(free_port())])
    try:
        assert httpx.get(f"{url.rstrip('/')}/v1/models").status_code == 404
    finally:
        demo.close()


def test_the_studio_offers_its_finished_runs(run, isolated_data_dir):
    shutil.copytree(run.path, isolated_data_dir / "runs" / "sam-lora")
    demo, url = app.start(["--api-key", KEY, "--port", str(free_port())])
    try:
        api = client(url.rstrip("/"))
        assert "sam-lora" in [m.id for m in api.models.list()]
        answer = api.chat.completions.create(
            model="sam-lora", temperature=0, max_tokens=8, messages=[{"role": "user", "content": MESSAGE}]
        )
        assert answer.choices[0].message.content == library_reply(run, [], MESSAGE, max_new_tokens=8)
    finally:
        demo.close()
