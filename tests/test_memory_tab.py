"""The Chat tab's Memory through Gradio's API: the owner's switch, k, exclusions and facts, the
memories used under a reply, and what visitors get (only what the owner enabled)."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client

import app
from components.limits import ChatLimits, clean_history
from components.memory_panel import NOTE_TITLE, MemoryPolicy
from tests.export_runs import adapter_run
from tests.memory_data import prepared_data
from tests.ui_client import call, launch
from training.chat import generate
from training.chat.decoding import preset
from training.chat.facts import facts_path, read_facts
from training.chat.feedback import feedback_path, read_feedback
from training.chat.memory_prompt import MemorySettings, open_chat_memory
from training.train.config import RunConfig

SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
TUNED = "Fine-tuned: texts like you"
ASKED = "did you feed the cat?"
GREEDY_8 = preset("Greedy", max_new_tokens=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny LoRA run whose training data (the memory_data history) has a memory beside it."""
    trained = adapter_run(tmp_path_factory)
    folder = tmp_path_factory.mktemp("memory-run")
    train_file = prepared_data(folder / "data")
    run = folder / "sam"
    shutil.copytree(trained.path, run)
    config = RunConfig.from_yaml(run / "config.yaml")
    config.train_file, config.validation_file = str(train_file), ""
    config.save(run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def studio():
    demo = app.build_app()
    url = launch(demo)
    yield Client(url, verbose=False)
    demo.close()


def text(content) -> str:  # Gradio 6 sends content as [{"type": "text", "text": ...}] parts
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def notes(history: list[dict]) -> list[str]:
    return [text(m["content"]) for m in history if (m.get("metadata") or {}).get("title") == NOTE_TITLE]


def replies(history: list[dict]) -> list[str]:
    return [
        text(m["content"]) for m in history if m["role"] == "assistant" and not (m.get("metadata") or {}).get("title")
    ]


def expected_reply(run, memory=None) -> list[str]:
    model = generate.load_chat_model(str(run))
    text = generate.reply(model, [], ASKED, GREEDY_8, memory=memory)
    return generate.split_bubbles(text, model.separator)


def test_the_owner_sees_the_memories_used_under_the_reply(studio, run):
    asked = {SOURCE: str(run), "Message": ASKED, "Max new tokens": 8}
    _, tuned, _, _ = call(studio, "/chat", **asked, **{"Memory on": True, "Memories per message (k)": 1})
    assert (
        len(notes(tuned)) == 1
        and "(Jordan Okafor) them: did you feed the cat? / you: twice lol he lies" in notes(tuned)[0]
    )
    assert tuned[-1]["metadata"]["title"] == NOTE_TITLE  # under the reply, collapsed
    memory = open_chat_memory(run, MemorySettings(k=1, facts=()))
    assert replies(tuned) == expected_reply(run, memory)  # the reply was given exactly these memories

    _, plain, _, _ = call(studio, "/chat", **asked)  # Memory off: no note, the plain prompt
    assert notes(plain) == [] and replies(plain) == expected_reply(run)


def test_feedback_stores_the_prompt_with_the_memories_the_reply_was_given(studio, run):
    memory_on = {"Memory on": True, "Memories per message (k)": 1}
    _, tuned, _, _ = call(studio, "/chat", **{SOURCE: str(run), "Message": ASKED, "Max new tokens": 8}, **memory_on)
    assert notes(tuned)  # the memories used are shown under the reply, as an assistant message
    rewrite = {TUNED: tuned, "✏️ Say it like me": "twice, he lies", "Max new tokens": 8}
    call(studio, "/say_it_like_me", **{SOURCE: str(run)}, **rewrite, **memory_on)
    [entry] = read_feedback(run)
    model = generate.load_chat_model(str(run))
    memory = open_chat_memory(run, MemorySettings(k=1, facts=()))
    seen = generate.build_prompt(model, [], ASKED, 8, memory=memory).messages
    assert entry["prompt"] == seen and entry["prompt"][-1] == {"role": "user", "content": ASKED}
    assert "them: did you feed the cat? / you: twice lol he lies" in entry["prompt"][0]["content"]
    assert entry["reply"] == model.separator.join(replies(tuned))  # the reply, not the note under it
    feedback_path(run).unlink()


def test_excluded_people_and_facts_change_what_is_recalled(studio, run):
    asked = {SOURCE: str(run), "Message": ASKED, "Max new tokens": 8, "Memory on": True, "Memories per message (k)": 3}
    _, tuned, _, _ = call(
        studio,
        "/chat",
        **asked,
        **{
            "Never recall from threads with these people": ["Jordan Okafor"],
            "Facts about you (one per line; always given when memory is on)": "barista in Portland",
        },
    )
    assert "twice lol he lies" not in notes(tuned)[0] and "Jordan Okafor" not in notes(tuned)[0]
    assert notes(tuned)[0].startswith("- fact: barista in Portland\n")


def test_facts_are_saved_beside_the_training_data(studio, run):
    status = call(
        studio,
        "/save_facts",
        **{
            SOURCE: str(run),
            "Facts about you (one per line; always given when memory is on)": "barista in Portland\n\nhas a cat",
        },
    )
    train_file = RunConfig.from_yaml(run / "config.yaml").train_file
    assert status == "Saved to `sam.facts.txt`." and read_facts(facts_path(train_file)) == [
        "barista in Portland",
        "has a cat",
    ]
    with pytest.raises(Exception, match="keep at most 30"):
        call(
            studio,
            "/save_facts",
            **{
                SOURCE: str(run),
                "Facts about you (one per line; always given when memory is on)": "\n".join(f"f{n}" for n in range(31)),
            },
        )
    facts_path(train_file).unlink()


def test_the_note_under_a_reply_never_goes_back_to_the_model():
    history = [
        {"role": "user", "content": "hey"},
        {"role": "assistant", "content": "hiii"},
        {"role": "assistant", "content": "- them: x / you: y", "metadata": {"title": NOTE_TITLE, "status": "done"}},
    ]
    assert clean_history(history, ChatLimits()) == history[:2]


@pytest.mark.parametrize("policy", [MemoryPolicy(), MemoryPolicy(for_visitors=True), MemoryPolicy(True, True)])
def test_visitors_get_memory_only_when_the_owner_enabled_it_and_see_it_only_when_allowed(run, policy):
    demo = app.build_chat_app(str(run), ChatLimits(max_new_tokens=16), memory_policy=policy)
    try:
        friend = Client(launch(demo), verbose=False)
        _, tuned, _, _ = call(friend, "/chat", **{"Message": ASKED, "Max new tokens": 8})
    finally:
        demo.close()
    memory = open_chat_memory(run) if policy.for_visitors else None
    assert replies(tuned) == expected_reply(run, memory)
    assert expected_reply(run, open_chat_memory(run)) != expected_reply(run)  # so the reply tells which prompt it got
    assert bool(notes(tuned)) == policy.shown_to_visitors
    page = str(friend.view_api(return_format="dict", print_info=False))
    assert "save_facts" not in page and "Memory on" not in page  # no memory setting exists on the chat-only page


def test_app_flags_for_visitors_memory_are_checked_at_start(run, tmp_path):
    with pytest.raises(SystemExit, match="^--show-memory: only with --memory$"):
        app.prepare(app.parse_args(["--chat-only", str(run), "--show-memory"]))
    with pytest.raises(SystemExit, match="^--memory: memory: offline-tiny is not a run or a data set"):
        app.prepare(app.parse_args(["--chat-only", "offline-tiny", "--memory"]))
    demo, _ = app.prepare(app.parse_args(["--chat-only", str(run), "--memory"]))
    demo.close()


@pytest.mark.parametrize("with_memory", [False, True])
def test_the_openai_endpoint_uses_memory_exactly_when_the_page_does(run, with_memory):
    """`--memory` gives visitors memory on the page and through /v1 alike; without it neither has any."""
    import openai

    from tests.ui_client import free_port

    flags = ["--chat-only", str(run), "--api-key", "sk-memory-test-key-0123", "--port", str(free_port())]
    demo, url = app.start(flags + (["--memory"] if with_memory else []))
    try:
        api = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key="sk-memory-test-key-0123", max_retries=0)
        answer = api.chat.completions.create(
            model=run.name, messages=[{"role": "user", "content": ASKED}], max_tokens=8, temperature=0
        )
    finally:
        demo.close()
    memory = open_chat_memory(run) if with_memory else None
    model = generate.load_chat_model(str(run))
    assert answer.choices[0].message.content == generate.reply(model, [], ASKED, GREEDY_8, memory=memory)
