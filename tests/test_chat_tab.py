"""The Chat tab and the chat-only page friends get, through Gradio's API."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

import app
from tests.export_runs import CHAT, adapter_run
from tests.ui_client import call, launch, submit
from tests.visitors import Visitor
from training.chat.serving import ChatLimits

SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
STUDIO_ENDPOINTS = {
    "/import_files",
    "/build_examples",
    "/show_example",
    "/load_preset",
    "/estimate",
    "/start_run",
    "/stop_run",
    "/resume_run",
    "/watch_run",
    "/compare_runs",
    "/queue_sweep",
    "/persona_report",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return adapter_run(tmp_path_factory)  # a tiny llama with a briefly trained LoRA adapter


@pytest.fixture(scope="module")
def studio():
    demo = app.build_app()
    url = launch(demo)
    yield Client(url, verbose=False)
    demo.close()


def assistant_texts(history):
    return [
        m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
        for m in history
        if m["role"] == "assistant"
    ]


def test_chat_streams_a_greedy_reply_with_speed_and_is_repeatable(studio, run):
    source = str(run.path)
    message, tuned, base, speed = call(
        studio, "/chat", **{SOURCE: source, "Message": CHAT[0]["content"], "Max new tokens": 24}
    )
    assert message == ""
    assert tuned[0] == {"role": "user", "content": CHAT[0]["content"]} or tuned[0]["role"] == "user"
    assert assistant_texts(tuned) and "tokens/s" in speed
    _, again, _, _ = call(studio, "/chat", **{SOURCE: source, "Message": CHAT[0]["content"], "Max new tokens": 24})
    assert assistant_texts(again) == assistant_texts(tuned)  # greedy is deterministic


def test_compare_mode_answers_with_the_base_model_too(studio, run):
    _, tuned, base, speed = call(
        studio,
        "/chat",
        **{
            SOURCE: str(run.path),
            "Message": CHAT[0]["content"],
            "Side by side with the base model": True,
            "Max new tokens": 24,
        },
    )
    assert base and base[0]["role"] == "user" and "fine-tuned:" in speed and "base:" in speed
    assert assistant_texts(base) != assistant_texts(tuned)


def test_load_precision_is_shown_before_sending_and_8_bit_on_a_cpu_is_refused_plainly(studio, run):
    from components.chat_tab import describe_load

    assert "fp32 on the CPU" in describe_load(str(run.path), "auto")
    assert describe_load(str(run.path), "4bit").startswith("⚠️ load_in 4bit: 8-bit and 4-bit loading need a CUDA GPU")
    with pytest.raises(Exception, match="8-bit and 4-bit loading need a CUDA GPU"):
        call(
            studio,
            "/chat",
            **{
                "Chat with: a finished run, a model folder, a Hub id, or offline-small": str(run.path),
                "Load weights in": "8bit",
                "Message": "hey",
                "Max new tokens": 8,
            },
        )


def test_the_first_reply_after_choosing_a_model_says_it_is_loading(studio, run):
    from training.chat import generate

    generate.clear_model_cache()
    ask = {SOURCE: str(run.path), "Message": CHAT[0]["content"], "Max new tokens": 8}
    first = submit(studio, "/chat", **ask)
    first.result()
    speeds = [speed for *_, speed in first.outputs()]
    # Named by the run folder's name (a friend's page must not show the server's paths), counting up.
    assert speeds[0].startswith(f"Loading {run.path.name}… 0 s") and "tokens/s" in speeds[-1]
    again = submit(studio, "/chat", **ask)
    again.result()
    assert not [speed for *_, speed in again.outputs() if "Loading" in speed]  # loaded: straight to the reply


def test_no_model_chosen_is_a_readable_error(studio):
    with pytest.raises(Exception, match="Pick what to chat with"):
        call(studio, "/chat", **{SOURCE: "", "Message": "hi"})


@pytest.fixture(scope="module")
def chat_only(run):
    demo = app.build_chat_app(str(run.path), ChatLimits(max_new_tokens=16, concurrency=2))
    url = launch(demo)
    yield url
    demo.close()


def test_chat_only_exposes_no_studio_endpoint(chat_only):
    endpoints = set(
        Client(chat_only, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    )
    assert endpoints and "/chat" in endpoints
    assert not endpoints & STUDIO_ENDPOINTS
    assert not [e for e in endpoints if "export" in e or "train" in e or "run" in e or "push" in e]


def test_chat_only_caps_reply_length_and_serves_8_friends_at_once(chat_only, run):
    from training.chat import decoding, generate

    with pytest.raises(Exception, match="greater than maximum value 16"):  # the cap holds at the API too
        call(Client(chat_only, verbose=False), "/chat", **{"Message": "write me an essay", "Max new tokens": 1000})

    def one_friend(number: int):
        # Each friend from an address of their own, as eight people on eight machines would be.
        friend = Visitor(chat_only, address=f"127.0.0.{10 + number}")
        try:
            reply = friend.call("/chat", {"Message": f"hey, friend {number} here", "Max new tokens": 16})
        finally:
            friend.close()
        assert reply.success, reply.error
        return reply.data[1]

    with ThreadPoolExecutor(max_workers=8) as pool:
        histories = list(pool.map(one_friend, range(8)))
    model = generate.load_chat_model(str(run.path))
    for number, history in enumerate(histories):
        assert history[0]["role"] == "user"
        # The same greedy reply the library gives with the cap: nothing longer got through.
        expected = generate.reply(model, [], f"hey, friend {number} here", decoding.preset("Greedy", max_new_tokens=16))
        assert "\n".join(assistant_texts(history)) == "\n".join(generate.split_bubbles(expected, model.separator))


def test_owner_gate_lets_the_signed_in_owner_through():
    from types import SimpleNamespace

    from components.common import owner_only

    guarded = owner_only("alice")(lambda name, count: f"{name} x{count}")
    assert guarded("run", 2, SimpleNamespace(username="alice")) == "run x2"
    with pytest.raises(Exception, match="Only alice"):
        guarded("run", 2, SimpleNamespace(username="mallory"))
    assert owner_only(None)(len) is len  # a local install: handlers untouched


def test_an_empty_reply_is_explained_not_shown_as_silence(monkeypatch):
    from types import SimpleNamespace

    from components import chat_reply
    from training.chat import decoding, generate

    monkeypatch.setattr(generate, "stream_reply", lambda *args, **kwargs: iter(()))
    model = SimpleNamespace(separator="\n", tokenizer=None)
    views = list(chat_reply.stream_views(model, [], "hey", decoding.preset("Greedy"), use_adapter=True))
    assert views == [([], "No reply: the model ended its turn at once. Try Balanced or Creative, or train longer.")]
