"""The persona report on a run that mixed other data sets in (knowledge Q&A): the person's metrics
come from their own chats only, and each mixed-in set gets its own held-out loss, base vs tuned."""

from __future__ import annotations

import json

import pytest

from tests.export_runs import adapter_run
from tests.report_runs import on_sam_data, sam_examples
from training.chat.decoding import DecodingSettings
from training.chat.generate import load_chat_model
from training.report.build import ReportOptions, build_report
from training.report.loss import reply_losses
from training.report.render import to_markdown
from training.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

QA = [
    ("What grade is a V4 boulder?", "About a 6B+ on the Font scale."),
    ("How long does sourdough proof?", "Overnight in the fridge, about twelve hours."),
    ("Where is the bike shop?", "On Elm Street, next to the bakery."),
    ("What does tip_split.py do?", "It splits a restaurant bill and the tip between friends."),
]
HELD_OUT = [
    ("Which hold is a crimp?", "A thin edge you grip with your fingertips."),
    ("When do you feed the starter?", "Every morning, equal parts flour and water."),
    ("Does the shop fix brakes?", "Yes, same day if you come before noon."),
]


def messages_rows(pairs):
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "kind": "qa"}
        for q, a in pairs
    ]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    run = on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "mixed")
    folder = tmp_path_factory.mktemp("knowledge")
    for name, pairs in (("knowledge.jsonl", QA), ("knowledge.val.jsonl", HELD_OUT)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in messages_rows(pairs)), encoding="utf-8")
    config = RunConfig.from_yaml(run / "config.yaml").with_overrides(mix=[f"{folder / 'knowledge.jsonl'}=0.5"])
    config.save(run / "config.yaml")
    return run


def test_each_mixed_in_data_set_gets_its_held_out_loss_base_and_tuned(mixed_run):
    options = ReportOptions(limit=4, seed=0, decoding=DecodingSettings(do_sample=False, max_new_tokens=8))
    report = build_report(mixed_run, options)
    [source] = report["mixed_sources"]
    assert (source["file"], source["rows"]) == ("knowledge.jsonl", 3)  # its own held-out rows, not the chats
    # Hand-built rows: each held-out Q&A under the run's system prompt, as training saw it.
    config = RunConfig.from_yaml(mixed_run / "config.yaml")
    rows = [
        {
            "prompt": [{"role": "system", "content": config.system_prompt}, {"role": "user", "content": q}],
            "completion": [{"role": "assistant", "content": a}],
        }
        for q, a in HELD_OUT
    ]
    model = load_chat_model(str(mixed_run))
    for side, use_adapter in (("tuned", True), ("base", False)):
        losses = reply_losses(model, rows, config, use_adapter)
        assert source[side] == pytest.approx(losses.nll.sum() / losses.tokens.sum(), rel=1e-5)
    assert report["data"]["rows"] == 4 and report["data"]["file"] != "knowledge.val.jsonl"  # the person's chats
    assert f"| knowledge.jsonl | 3 | {source['base']:.3f} | {source['tuned']:.3f} |" in to_markdown(report)
