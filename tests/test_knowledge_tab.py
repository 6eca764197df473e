"""The Data tab's "Knowledge files" driven through Gradio's API as the browser drives it: build with a
real chat-completions server as the generator, untick a row in the review table, save the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

import app
from tests.chat_server import ChatServer
from tests.ui_client import call, launch

NOTES = "# Climbing\n\nThe gym opens at 7.\n\n## Grades\n\nV4 is my limit on the slab wall.\n"
SCRIPT = "print('hello')\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import os

    os.environ["TALKLIKE_DATA_DIR"] = str(tmp_path_factory.mktemp("ui-data"))
    demo = app.build_app()
    demo.queue()
    yield Client(launch(demo), verbose=False)
    demo.close()


@pytest.fixture
def uploads(tmp_path):
    (tmp_path / "climbing.md").write_text(NOTES)
    (tmp_path / "hello.py").write_text(SCRIPT)
    return [handle_file(str(tmp_path / "climbing.md")), handle_file(str(tmp_path / "hello.py"))]


def test_build_review_untick_and_save(client, uploads):
    replies = {"Climbing": "Q: When does the gym open?\nA: At 7.\nQ: What is your limit on the slab wall?\nA: V4."}
    with ChatServer(replies) as server:
        report, table, saved = call(
            client,
            "/build_knowledge",
            **{
                "Knowledge files (markdown/text notes, docs, code; folders as zip)": uploads,
                "Code snapshot date ('As of ...')": "May 2024",
                "Generated Q&A pairs per document (the cap; 0 = templates only)": 2,
                "Generator: model or OpenAI-compatible URL": server.url,
            },
        )
    assert "**2 files** read" in report and "**2 generated pairs** from 1 documents" in report
    assert table["headers"] == ["keep", "#", "kind", "from", "question", "answer"]
    assert [row[2:5] for row in table["data"]] == [
        ["section", "climbing.md", "Walk me through Climbing."],
        ["section", "climbing.md", "Walk me through Grades (Climbing)."],
        ["code", "hello.py", "What does the hello.py file look like in the repo?"],
        ["qa", "climbing.md", "When does the gym open?"],
        ["qa", "climbing.md", "What is your limit on the slab wall?"],
    ]
    assert table["data"][2][5] == "As of May 2024, the hello.py file looks like so:\n```python\nprint('hello')\n```"
    assert saved == ""

    table["data"][1][0] = False  # the reviewer leaves out the Grades section
    path, summary = client.predict(table, api_name="/save_knowledge")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    held = [json.loads(line) for line in Path(path.replace(".jsonl", ".val.jsonl")).read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows + held] == [
        "Walk me through Climbing.",
        "What does the hello.py file look like in the repo?",
        "What is your limit on the slab wall?",
        # Held out: of 2 pairs one (at least one whenever there are two), the one whose question's
        # sha256 sorts first: 4d33a1fb... before 55359741...
        "When does the gym open?",
    ]
    assert "Saved **3 rows**" in summary and "1 Q&A held out" in summary and "(1 left out)" in summary


def test_saving_before_building_or_with_nothing_kept_says_what_to_do(client, uploads):
    client = Client(client.src, verbose=False)  # a new visit: nothing built in this session yet
    with pytest.raises(Exception, match="build the rows first"):
        client.predict(
            {"headers": ["keep", "#", "kind", "from", "question", "answer"], "data": []}, api_name="/save_knowledge"
        )
    _, table, _ = call(
        client, "/build_knowledge", **{"Knowledge files (markdown/text notes, docs, code; folders as zip)": uploads}
    )
    for row in table["data"]:
        row[0] = False
    with pytest.raises(Exception, match="every row is unticked; keep at least one"):
        client.predict(table, api_name="/save_knowledge")
