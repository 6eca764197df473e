"""Knowledge files -> seed 003's three kinds of rows: templates checked against hand-written rows,
generated Q&A against a real HTTP chat-completions server, and the command line around them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chat_server import MODEL, ChatServer
from training.data import generator, knowledge
from training.data.generator import EndpointGenerator, generate_pairs, parse_pairs
from training.errors import UserError

ROOT = Path(__file__).resolve().parent.parent

FASTLY = """# Fastly & Caching

We put Fastly in front of manage-frontend.

## Purging

Run `make purge` after a deploy.

```bash
# a comment, not a heading
make purge
```

### Soft purges
They keep stale pages for a minute.
"""


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def row(question, answer, source, kind):
    return {"messages": [user(question), assistant(answer)], "source": source, "kind": kind}


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "wiki"
    folder.mkdir()
    (folder / "fastly.md").write_text(FASTLY)
    (folder / "team_notes.txt").write_text("Standup is at 10.\nDemos on Fridays.\n")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return folder


@pytest.fixture
def code(tmp_path):
    folder = tmp_path / "manage-frontend"
    (folder / "src").mkdir(parents=True)
    (folder / "package.json").write_text('{\n  "name": "manage-frontend"\n}\n')
    (folder / "src" / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "data.jsonl").write_text('{"text": "a data set, not knowledge"}\n')
    return folder


def test_documents_become_one_instruction_per_section_answered_by_the_section(docs):
    skipped = []
    files = knowledge.read_knowledge([docs], skipped)
    assert knowledge.template_rows(files) == [
        row(
            "Walk me through Fastly & Caching.",
            "We put Fastly in front of manage-frontend.",
            "wiki/fastly.md",
            "section",
        ),
        row(
            "Walk me through Purging (Fastly & Caching).",
            "Run `make purge` after a deploy.\n\n```bash\n# a comment, not a heading\nmake purge\n```",
            "wiki/fastly.md",
            "section",
        ),
        row(
            "Walk me through Soft purges (Fastly & Caching).",
            "They keep stale pages for a minute.",
            "wiki/fastly.md",
            "section",
        ),
        row("Walk me through team notes.", "Standup is at 10.\nDemos on Fridays.", "wiki/team_notes.txt", "section"),
    ]
    assert skipped == ["wiki/logo.png"]


def test_code_files_are_shown_as_of_the_snapshot_date_in_their_repo(code):
    files = knowledge.read_knowledge([code])
    assert knowledge.template_rows(files, as_of="December 2023") == [
        row(
            "What does the package.json file look like in the manage-frontend repo?",
            'As of December 2023, the package.json file looks like so:\n```json\n{\n  "name": "manage-frontend"\n}\n```',
            "manage-frontend/package.json",
            "code",
        ),
        row(
            "What does the src/util.py file look like in the manage-frontend repo?",
            "As of December 2023, the src/util.py file looks like so:\n```python\ndef add(a, b):\n    return a + b\n```",
            "manage-frontend/src/util.py",
            "code",
        ),
    ]


def test_a_long_file_comes_in_parts_cut_at_line_ends(tmp_path):
    script = tmp_path / "long.py"
    script.write_text("".join(f"x{n} = {n}\n" for n in range(30)))
    # Budget 60 - 40 = 20 tokens, a line counting ceil(chars / 4): "x0 = 0\n" 2 tokens, "x10 = 10\n" 3,
    # so the parts hold lines 0-9 (20 tokens), 10-15, 16-21, 22-27 (18 each) and 28-29.
    rows = knowledge.template_rows(knowledge.read_knowledge([script]), chunk_tokens=60)
    assert [r["messages"][0]["content"] for r in rows] == [
        f"What does the long.py file look like in the repo? (part {n} of 5)" for n in range(1, 6)
    ]
    first = rows[0]["messages"][1]["content"]
    assert (
        first
        == "Part 1 of 5 of the long.py file looks like so:\n```python\n"
        + "".join(f"x{n} = {n}\n" for n in range(10))
        + "```"
    )
    bodies = [r["messages"][1]["content"].split("```python\n")[1].removesuffix("\n```") for r in rows]
    assert "\n".join(bodies) + "\n" == script.read_text()


def test_parse_pairs_reads_the_shapes_models_write():
    assert parse_pairs("Q: What is Fastly?\nA: A CDN.\n\nQ: When to purge?\nA: After a deploy,\nevery time.") == [
        ("What is Fastly?", "A CDN."),
        ("When to purge?", "After a deploy,\nevery time."),
    ]
    assert parse_pairs("Sure! Here you go:\n1. **Question 1:** Why?\n   **Answer:** Because.\n2) Q2: Half a pair") == [
        ("Why?", "Because.")
    ]
    assert parse_pairs('[{"question": "Who?", "answer": "Sam."}, {"question": "", "answer": "x"}]') == [
        ("Who?", "Sam.")
    ]
    assert parse_pairs("I cannot help with that.") == []
    assert parse_pairs("A: an answer with no question\nQ: a question with no answer") == []


REPLIES = {
    "Fastly & Caching": "Q: What sits in front of manage-frontend?\nA: Fastly.\nQ: When do you purge?\nA: After a deploy.\n"
    "Q: What is a soft purge?\nA: One that keeps stale pages for a minute.",
    "team notes": "As an AI language model I would rather chat about the weather.",
}


def test_generated_pairs_come_from_a_real_endpoint_capped_and_malformed_answers_counted(docs, code):
    files = knowledge.read_knowledge([docs, code])
    progress = []
    with ChatServer(REPLIES) as server:
        ask = EndpointGenerator(server.url, max_new_tokens=200)
        rows, report = generate_pairs(files, ask, per_document=2, progress=lambda *step: progress.append(step))
    assert rows == [
        row("What sits in front of manage-frontend?", "Fastly.", "wiki/fastly.md", "qa"),
        row("When do you purge?", "After a deploy.", "wiki/fastly.md", "qa"),
    ]
    assert report.as_dict() == {
        "documents": 2,
        "pairs": 2,
        "malformed_answers": 1,
        "pairs_over_cap": 1,
        "seconds": round(report.seconds, 1),
    }
    assert report.problems == ["wiki/team_notes.txt: no Q:/A: pair in the generator's answer"]
    assert progress == [(0, 2, "wiki/fastly.md"), (1, 2, "wiki/team_notes.txt"), (2, 2, "")]  # code files get none
    first = server.requests[0]
    assert first["model"] == MODEL and first["max_tokens"] == 200 and first["temperature"] == 0
    assert first["messages"][0]["content"] == generator.DEFAULT_PROMPT.format(
        n=2, title="Fastly & Caching", text=FASTLY
    )


def test_an_answer_that_is_not_json_is_skipped_and_an_unreachable_server_is_one_clear_error(docs):
    files = knowledge.read_knowledge([docs])
    with ChatServer({"Fastly": "<not json>", "team notes": "Q: When is standup?\nA: At 10."}) as server:
        rows, report = generate_pairs(files, EndpointGenerator(server.url, 100, model_name="mine"), per_document=3)
        assert [r["messages"][0]["content"] for r in rows] == ["When is standup?"]
        assert report.malformed == 1 and server.requests[0]["model"] == "mine"
    with pytest.raises(UserError, match=r"generator http://127\.0\.0\.1:\d+/v1: cannot reach it"):
        generate_pairs(files, EndpointGenerator(server.url, 100, model_name="mine"), per_document=1)


def test_the_key_comes_from_the_environment(docs, monkeypatch):
    files = knowledge.read_knowledge([docs])
    with ChatServer(REPLIES, key="sk-secret") as server:
        with pytest.raises(UserError, match="HTTP 401 .set TALKLIKE_GENERATOR_KEY"):
            generate_pairs(files, EndpointGenerator(server.url, 100, model_name="m"), per_document=1)
        monkeypatch.setenv("TALKLIKE_GENERATOR_KEY", "sk-secret")
        rows, _ = generate_pairs(files, EndpointGenerator(server.url, 100, model_name="m"), per_document=1)
    assert len(rows) == 1


def test_a_tenth_of_the_pairs_is_held_out_the_same_way_every_time():
    file = knowledge.KnowledgeFile("a.md", None, "text", is_code=False)
    pairs = [knowledge.qa_row(f"question {n}?", f"answer {n}", file) for n in range(20)]
    train, validation = knowledge.split_pairs(pairs)
    assert len(validation) == 2 and len(train) == 18
    assert knowledge.split_pairs(list(reversed(pairs)))[1] == list(reversed(validation))
    assert sorted(map(str, train + validation)) == sorted(map(str, pairs))


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "training", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cli_writes_templates_and_generated_pairs_with_the_held_out_file(docs, code, tmp_path):
    out = tmp_path / "out" / "knowledge.jsonl"
    replies = {
        "Fastly": "\n".join(f"Q: Fastly question {n}?\nA: Fastly answer {n}." for n in range(10)),
        "team notes": "\n".join(f"Q: Notes question {n}?\nA: Notes answer {n}." for n in range(10)),
    }
    with ChatServer(replies) as server:
        done = run_cli(
            "knowledge",
            docs,
            code,
            "--out",
            out,
            "--as-of",
            "2023-12-01",
            "--generate",
            "10",
            "--generator",
            server.url,
        )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {k: summary[k] for k in ("rows", "section", "code", "qa", "train", "validation", "files")} == {
        "rows": 26,
        "section": 4,
        "code": 2,
        "qa": 20,
        "train": 24,
        "validation": 2,
        "files": 4,
    }
    assert "generating Q&A: 1/2 documents wiki/team_notes.txt" in done.stderr
    train = [json.loads(line) for line in out.read_text().splitlines()]
    validation = [json.loads(line) for line in (tmp_path / "out" / "knowledge.val.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in validation] == ["qa", "qa"] and len(train) == 24
    assert train[4]["messages"][1]["content"].startswith("As of 2023-12-01, the package.json file looks like so:")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--generate", "0", "--as-of", "x" * 50], "error: as_of: 'xxxx"),
        (["--generate", "2", "--prompt-file", "missing.txt"], "error: --prompt-file: missing.txt does not exist"),
        (
            ["--generate", "2", "--generator", "http://127.0.0.1:9/v1"],
            "error: generator http://127.0.0.1:9/v1: cannot reach it",
        ),
        (["--generate", "50"], "error: generate: 50; expected 1 to 20 pairs per document"),
    ],
)
def test_cli_refusals_are_one_line_naming_what_was_expected_and_write_nothing(docs, tmp_path, args, expected):
    out = tmp_path / "k.jsonl"
    done = run_cli("knowledge", docs, "--out", out, "--generator-model", "m", *args)
    last = done.stderr.splitlines()[-1]  # after any progress lines
    assert done.returncode == 2 and last.startswith(expected) and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_cli_refuses_a_prompt_without_the_document_and_a_folder_without_text(docs, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Write {n} questions.")
    done = run_cli("knowledge", docs, "--out", tmp_path / "k.jsonl", "--generate", "1", "--prompt-file", prompt)
    assert done.returncode == 2 and done.stderr.startswith("error: prompt: it has no {text} placeholder")
    empty = tmp_path / "pictures"
    empty.mkdir()
    (empty / "a.png").write_bytes(b"\x89PNG")
    done = run_cli("knowledge", empty, "--out", tmp_path / "k.jsonl")
    assert (
        done.returncode == 2
        and "pictures: no documents or code files found (only media or empty folders)" in done.stderr
    )


def test_a_zipped_repo_is_named_after_the_zip(code, tmp_path):
    import shutil

    archive = shutil.make_archive(str(tmp_path / "manage-frontend"), "zip", code)
    rows = knowledge.template_rows(knowledge.read_knowledge([archive]), as_of="December 2023")
    assert rows[0]["messages"][0]["content"] == "What does the package.json file look like in the manage-frontend repo?"
    assert rows[0]["source"] == "manage-frontend/package.json"
