"""The Data tab driven through Gradio's API, as the browser drives it, on the sample export."""

import json
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

import app
from tests.ui_client import call, launch, submit
from training.chat.memory import is_pending

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"
TINY_PREVIEW = {"Preview with the tokenizer of": "offline-tiny"}  # the default, offline-small, is a 93 MB download


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import os

    os.environ["TALKLIKE_DATA_DIR"] = str(tmp_path_factory.mktemp("ui-data"))
    demo = app.build_app()
    demo.queue()
    yield Client(launch(demo), verbose=False)
    demo.close()


def test_upload_pick_me_build_and_preview(client):
    report, me, threads = client.predict([handle_file(str(SAMPLE))], api_name="/import_files")
    assert "Facebook Messenger / Instagram" in report and "813 text messages" in report
    assert me["value"] == "Sam Rivera"
    assert ["Sam Rivera (339)", "Sam Rivera"] in me["choices"]
    assert any("climbing crew" in label and "group" in label for label, _ in threads["choices"])

    summary, saved, histogram, dropped, lengths, examples, index, rendered = call(
        client,
        "/build_examples",
        **{**TINY_PREVIEW, "Which participant are you?": "Sam Rivera", "Max length (tokens)": 256},
    )
    assert "245 examples" in summary and "217 train / 28 validation" in summary
    saved_rows = Path(saved).read_text(encoding="utf-8").splitlines()
    assert len(saved_rows) == 217 and Path(saved).with_name(Path(saved).name.replace(".jsonl", ".val.jsonl")).exists()
    # The page indexes the Memory once the answer is shown (tests/test_browser_journey.py); through
    # the API it waits for its first use.
    assert is_pending(Path(saved).with_suffix(".memory")) and "being indexed for the Chat tab's Memory" in summary
    reasons = {row[0]: row[1] for row in dropped["data"]}
    assert reasons["media"] == 4 and reasons["call"] == 1 and reasons["unsent or deleted"] == 1
    assert sum(bar[1] for bar in histogram["data"]) == 245
    assert "Tokens per example" in lengths
    assert examples["headers"] == ["split", "they said", "you replied"] and len(examples["data"]) == 245
    trained = "".join(seg["token"] for seg in rendered if seg["class_or_confidence"] == "trained")
    first_reply = examples["data"][0][2]
    assert trained.startswith(first_reply)
    context = "".join(seg["token"] for seg in rendered if seg["class_or_confidence"] is None)
    assert examples["data"][0][1] in context and first_reply not in context

    second = client.predict(1, "offline-tiny", 256, api_name="/show_example")
    trained = "".join(seg["token"] for seg in second if seg["class_or_confidence"] == "trained")
    assert trained.startswith(examples["data"][1][2])


def test_the_chosen_separator_is_saved_with_the_examples(client):
    client.predict([handle_file(str(SAMPLE))], api_name="/import_files")
    summary, saved, *_ = call(
        client,
        "/build_examples",
        **{
            **TINY_PREVIEW,
            "Which participant are you?": "Sam Rivera",
            "Join my consecutive messages with": "| (pipe, seed 000)",
            "Earlier turns in each prompt": 3,
        },
    )
    manifest = json.loads(Path(saved).with_name(Path(saved).name.replace(".jsonl", ".persona.json")).read_text())
    assert manifest["prompt"]["separator"] == "|" and manifest["prompt"]["context_turns"] == 3
    assert manifest["shaping"]["me"] == "Sam Rivera" and manifest["counts"]["examples"] == 245
    assert ".persona.json" in summary


def test_group_chats_can_be_left_out(client):
    client.predict([handle_file(str(SAMPLE))], api_name="/import_files")
    summary, _saved, _histogram, dropped, _lengths, examples, _index, _rendered = call(
        client,
        "/build_examples",
        **{**TINY_PREVIEW, "Which participant are you?": "Sam Rivera", "Include group chats": False},
    )
    reasons = {row[0]: row[1] for row in dropped["data"]}
    assert reasons["group chat excluded"] == 195
    assert not any(reply.startswith(("Maya Chen:", "Leo Duarte:")) for _, reply, _ in examples["data"])


def test_garbage_upload_shows_a_readable_error(client, tmp_path):
    garbage = tmp_path / "notes.json"
    garbage.write_text('{"participants": [{"name": "A"}], "messages": [{"sender_na')
    with pytest.raises(Exception, match="notes.json.*truncated"):
        client.predict([handle_file(str(garbage))], api_name="/import_files")


def test_cancel_stops_a_long_build_and_saves_nothing(client, tmp_path, monkeypatch, isolated_data_dir):
    from training.data import persona

    data = tmp_path / "chats.jsonl"
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"hi {n}"}, {"role": "assistant", "content": f"yo {n}"}]})
        for n in range(400)
    ]
    data.write_text("\n".join(lines) + "\n")
    client.predict([handle_file(str(data))], api_name="/import_files")
    # Each conversation made slow and counted, so "the work stopped" is something a test can see.
    shaped = []
    kept_messages = persona._kept_messages

    def slow(*args):
        shaped.append(1)
        time.sleep(0.02)
        return kept_messages(*args)

    monkeypatch.setattr(persona, "_kept_messages", slow)
    job = submit(client, "/build_examples", **{**TINY_PREVIEW, "Which participant are you?": "assistant"})
    deadline = time.monotonic() + 60
    while len(shaped) < 5:
        assert time.monotonic() < deadline and not job.done(), "the build never started"
        time.sleep(0.05)
    assert client.predict(api_name="/cancel_step") == "Cancelled: nothing was saved."
    time.sleep(0.5)  # the step notices at the next conversation (0.02 s away)
    stopped_at = len(shaped)
    time.sleep(1.5)
    assert len(shaped) == stopped_at < 400, f"the build kept working after Cancel ({stopped_at} -> {len(shaped)})"
    assert not list(isolated_data_dir.rglob("*.jsonl")), "a cancelled build saved a data set"
