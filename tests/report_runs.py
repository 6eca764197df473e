"""Finished tiny runs pointed at the sample persona's data, for the report's tests (library, CLI, UI).

The runs themselves come from export_runs (a briefly trained LoRA adapter, or a full fine-tune); the
data is the sample Messenger export prepared as a user would: 217 training rows and 28 held out.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training.train.config import RunConfig

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sam_messenger_export.zip"


def sam_examples(factory) -> tuple[Path, Path]:
    """(train, validation) JSONL of the sample persona, Sam Rivera, whole conversations held out."""
    from training.data.formats import load
    from training.data.persona import prepare, save
    from training.data.shaping import ShapingOptions

    prepared = prepare(load([SAMPLE]), ShapingOptions(me="Sam Rivera", system_prompt="You are {me}."))
    return save(prepared, factory.mktemp("sam") / "sam.jsonl")


def on_sam_data(run, factory, data: tuple[Path, Path], name: str) -> Path:
    """A copy of a finished tiny run whose config points at `data` (its own report.json stays its own)."""
    folder = factory.mktemp(name) / name
    shutil.copytree(run.path, folder)
    config = RunConfig.from_yaml(folder / "config.yaml")
    train, validation = map(str, data)
    config = config.with_overrides(train_file=train, validation_file=validation, output_dir=str(folder), name=name)
    config.save(folder / "config.yaml")
    return folder
