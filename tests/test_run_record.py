"""Reading a run in one place: config, the persona manifest it trained on, final/, status, metrics;
and runs made before data sets carried a manifest, read the way they used to chat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.data.formats import load
from training.data.manifest import manifest_path, read_manifest
from training.data.persona import prepare, save
from training.data.shaping import ShapingOptions
from training.errors import UserError
from training.tiny import build_tiny_model
from training.train.config import RunConfig
from training.train.run_record import read_run, record_manifest
from training.train.runs import Run
from training.train.trainer import train

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LoRA run of the tiny model on the sample persona prepared with '|' and 4 context turns."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_generate: a second thread only waits on a model this small
    folder = tmp_path_factory.mktemp("trained")
    options = ShapingOptions(me="Sam Rivera", separator="|", context_turns=4, system_prompt="You are {me}.")
    train_file, validation_file = save(prepare(load([str(SAMPLE)]), options), folder / "sam.jsonl")
    config = RunConfig(
        name="sam",
        model=str(build_tiny_model(folder / "tiny")),
        max_steps=2,
        batch_size=8,
        max_length=128,
        logging_steps=1,
        lora_r=4,
        target_modules="all-linear",
        dtype="fp32",
        train_file=str(train_file),
        validation_file=str(validation_file),
        output_dir=str(folder / "runs" / "sam"),
    )
    assert train(config)["state"] == "completed"
    yield folder / "runs" / "sam", config
    torch.set_num_threads(threads)


def test_a_run_reads_as_one_record(trained):
    run_dir, config = trained
    record = read_run(run_dir / "final")  # the final/ folder names the same run

    assert record.name == "sam" and record.config.max_steps == 2 and record.status["state"] == "completed"
    assert record.manifest == read_manifest(manifest_path(config.train_file)) == read_manifest(run_dir / "persona.json")
    assert (record.prompt.separator, record.prompt.context_turns, record.prompt.system_prompt) == (
        "|",
        4,
        "You are Sam Rivera.",
    )
    assert record.adapter and not record.seq2seq and record.base_model == config.model
    assert [m["step"] for m in record.metrics() if m.get("loss") is not None] == [1, 2]
    info = json.loads((run_dir / "final" / "talklike.json").read_text())
    assert info["prompt"] == record.prompt.to_dict() and info["system_prompt"] == "You are Sam Rivera."
    assert "me" not in info and "shaping" not in info  # the manifest's choices stay in the data and run folders


def test_the_run_keeps_the_manifest_it_trained_on(trained, tmp_path):
    run_dir, config = trained
    # The data is prepared again into the same file with other settings after the run started.
    options = ShapingOptions(me="Sam Rivera", separator="\n", context_turns=2)
    save(prepare(load([str(SAMPLE)]), options), config.train_file)
    try:
        assert read_run(run_dir).prompt.separator == "|"  # what it trained on, not what the file says now
        copy = tmp_path / "sam"
        copy.mkdir()
        assert record_manifest(Run(copy), config, resume=False)["prompt"]["separator"] == "\n"  # a new start
        (copy / "persona.json").write_text((run_dir / "persona.json").read_text())
        assert record_manifest(Run(copy), config, resume=True)["prompt"]["separator"] == "|"  # a resume
        manifest_path(config.train_file).unlink()  # data without a manifest: no stale copy is left
        assert record_manifest(Run(copy), config, resume=False) is None and not (copy / "persona.json").exists()
    finally:
        save(
            prepare(
                load([str(SAMPLE)]),
                ShapingOptions(me="Sam Rivera", separator="|", context_turns=4, system_prompt="You are {me}."),
            ),
            config.train_file,
        )


def _old_run(root: Path, task_type: str, config_text: str, info: dict | None) -> Path:
    """A run folder as talklike wrote it before manifests: no persona.json, separator in config.yaml."""
    run = root / "old"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(config_text)
    adapter = {"task_type": task_type, "base_model_name_or_path": str(root / "moved-away"), "peft_type": "LORA"}
    (run / "final" / "adapter_config.json").write_text(json.dumps(adapter))
    if info is not None:
        (run / "final" / "talklike.json").write_text(json.dumps(info))
    return run


def test_runs_from_before_manifests_chat_as_they_did(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    seq2seq = _old_run(
        tmp_path / "a",
        "SEQ_2_SEQ_LM",
        f"model: {base}\nseparator: ' / '\n",
        {"separator": " / ", "system_prompt": "You are Jo.", "seq2seq": True},
    )
    record = read_run(seq2seq)
    assert (record.prompt.separator, record.prompt.system_prompt, record.prompt.context_turns) == (
        " / ",
        "You are Jo.",
        None,
    )
    assert record.manifest is None and record.base_model == str(base)  # the adapter's base moved: found via config
    unfinished = _old_run(tmp_path / "b", "SEQ_2_SEQ_LM", f"model: {base}\nseparator: ' / '\n", None)
    assert read_run(unfinished).prompt.separator == " / "  # only config.yaml still says it
    causal = _old_run(tmp_path / "c", "CAUSAL_LM", f"model: {base}\nseparator: '|'\nsystem_prompt: hi\n", None)
    assert (read_run(causal).prompt.separator, read_run(causal).prompt.system_prompt) == (
        "\n",
        "hi",
    )  # chat kept newlines


def test_damaged_files_name_themselves(tmp_path):
    run = _old_run(tmp_path, "CAUSAL_LM", "model: offline-tiny\n", None)
    (run / "final" / "talklike.json").write_text("{not json")
    with pytest.raises(UserError, match=r"^final/talklike.json: not valid JSON"):
        read_run(run).prompt  # noqa: B018 - reading it is the test
    (run / "final" / "talklike.json").write_text(json.dumps({"prompt": {"separator": 3}}))
    with pytest.raises(UserError, match=r"^final/talklike.json: prompt.separator: 3 is not text"):
        read_run(run).prompt  # noqa: B018
    (run / "persona.json").write_text('{"format_version": 1, "prompt": []}')
    with pytest.raises(UserError, match=r"persona.json: prompt: expected an object"):
        read_run(run)
