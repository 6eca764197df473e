"""The Train tab through Gradio's API: a run started from the UI streams its progress to any
client, survives the client going away, and stops keeping what it learned."""

import time
from pathlib import Path

import pytest
from gradio_client import Client

import app
from tests.ui_client import call, launch
from training.data import formats, persona
from training.data.shaping import ShapingOptions

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"


@pytest.fixture
def ui(isolated_data_dir):
    train_file = isolated_data_dir / "datasets" / "sam.jsonl"
    prepared = persona.prepare(formats.load([SAMPLE]), ShapingOptions(me="Sam Rivera"))
    persona.save(prepared, train_file)
    demo = app.build_app()
    url = launch(demo)
    yield url, train_file
    demo.close()


def watch(client: Client, run: str):
    status, progress, loss, _lr, _speed, log = client.predict(run, api_name="/watch_run")
    rows = loss["data"] if loss else []
    return status, progress, rows, log


def wait_for(predicate, client, run, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = watch(client, run)
        if predicate(*view):
            return view
        time.sleep(1)
    raise AssertionError(f"timed out; last view: {view[0]!r} {view[1]!r}")


def test_estimate_start_watch_reconnect_and_stop(ui):
    url, train_file = ui
    client = Client(url, verbose=False)
    # Choosing the recipe fills the form, as in the browser; the test then sends that form.
    source, *values = client.predict("offline-tiny", str(train_file), api_name="/load_preset")
    assert "offline" in source.lower()
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/load_preset"]["returns"]
    form = {r["label"]: value for r, value in zip(returns[1:], values)}
    assert form["Model: Hub id, local folder, or offline-tiny"] == "offline-tiny"
    form.update(
        {
            "Recipe": "offline-tiny",
            "Max steps (0 = by epochs)": 400,
            "Log every (steps)": 2,
            "Evaluate every (steps)": 10,
            "Checkpoint every (steps)": 10,
        }
    )
    report = call(client, "/estimate", **form)
    assert "trainable" in report and "Peak memory" in report and "400 steps" in report

    run_choice, _ = call(client, "/start_run", **form)
    run = run_choice["value"]
    assert run in [choice[1] for choice in run_choice["choices"]]

    # Updates stream in while it trains: steps and loss points grow between two looks.
    _, first_progress, first_rows, _ = wait_for(lambda s, p, rows, log: len(rows) >= 2, client, run)
    _, later_progress, later_rows, log = wait_for(lambda s, p, rows, log: len(rows) > len(first_rows) + 2, client, run)
    assert "step" in later_progress and "ETA" in later_progress
    assert {row[2] for row in later_rows} >= {"train"}

    # A client that reconnects (a reloaded page) sees the same live run, further along.
    client.close() if hasattr(client, "close") else None
    again = Client(url, verbose=False)
    status, _, rows, _ = watch(again, run)
    assert "running" in status and len(rows) >= len(later_rows)

    # A second Start while it runs is refused with a message, not a traceback.
    with pytest.raises(Exception, match="already active"):
        call(again, "/start_run", **form)

    stopped = call(again, "/stop_run", **{"Watching run": run})
    assert "stopping" in stopped
    status, *_ = wait_for(lambda s, p, rows, log: "stopped" in s, again, run)
    assert "Saved model" in status
    run_dir = Path(status.split("Saved model: `")[1].split("`")[0])
    assert (run_dir / "adapter_config.json").is_file()


def test_the_form_shows_every_setting_with_the_label_help_and_choices_of_its_field(isolated_data_dir):
    import dataclasses

    import gradio as gr

    from components.train_tab import NOT_IN_FORM, build_train_tab
    from training.train.config import RunConfig

    with gr.Blocks():
        tab = build_train_tab()

    for field in dataclasses.fields(RunConfig):
        if field.name in NOT_IN_FORM:  # the Recipe dropdown, Start's run folder, the Data tab's held-out file
            assert field.name not in tab.form
            continue
        widget = tab.form[field.name]
        assert (widget.label, widget.info) == (field.metadata["label"], field.metadata["help"]), field.name
        if "choices" in field.metadata:
            assert [value for _, value in widget.choices] == list(field.metadata["choices"]), field.name
    assert isinstance(tab.form["packing"], gr.Checkbox) and tab.form["lora_r"].precision == 0


def test_add_data_set_mixes_a_knowledge_set_into_the_run(ui):
    import json

    from training.data import knowledge

    url, train_file = ui
    notes = train_file.parent / "notes"
    notes.mkdir()
    (notes / "climbing.md").write_text("# Climbing\n\nThe gym opens at 7 and the slab wall is my favourite.\n")
    knowledge_file, _ = knowledge.save(
        knowledge.build(knowledge.template_rows(knowledge.read_knowledge([notes])), []),
        train_file.parent / "knowledge.jsonl",
    )
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Add data set: .*nowhere.jsonl does not exist"):
        client.predict([], "/nowhere.jsonl", 0.5, api_name="/add_data_set")
    added = client.predict([], str(knowledge_file), 0.25, api_name="/add_data_set")
    assert added["value"] == [f"{knowledge_file}=0.25"]
    again = client.predict(added["value"], str(knowledge_file), 0.5, api_name="/add_data_set")
    assert again["value"] == [f"{knowledge_file}=0.5"]  # a file is in the mix once, at its latest weight

    source, *values = client.predict("offline-tiny", str(train_file), [], api_name="/load_preset")
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/load_preset"]["returns"]
    form = {r["label"]: value for r, value in zip(returns[1:], values)}
    form.update(
        {"Recipe": "offline-tiny", "Max steps (0 = by epochs)": 2, "Mixed-in data sets (PATH=WEIGHT)": again["value"]}
    )
    run = call(client, "/start_run", **form)[0]["value"]
    status, *_ = wait_for(lambda s, p, rows, log: "completed" in s or "failed" in s, client, run)
    assert "completed" in status, status
    run_dir = Path(status.split("Saved model: `")[1].split("`")[0]).parent
    mix = json.loads((run_dir / "mix.json").read_text())
    assert [(Path(s["path"]).name, s["weight"], s["rows"]) for s in mix["sources"]] == [
        ("sam.jsonl", 1.0, 217),
        ("knowledge.jsonl", 0.5, 1),
    ]
    assert mix["leak_check"]["leaked"] == 0 and mix["leak_check"]["validation_rows"] == 28
