"""Everything about a run folder, read in one place: config, the persona it trained on, the trained
model, status and metrics. Chat, export, the model card, the trainer and the UI read runs here.

    record = read_run("runs/sam")    # or a run name under the runs folder
    record.config   record.manifest   record.prompt   record.model (final/, or None)   record.status
    record.base_model   record.metrics()

`read_model_folder` reads any trained model's folder the same way (a run's final/, an export, an
adapter or plain model folder). talklike.json, the file beside a trained model that says how to chat
with it, is written (`write_model_info`) and read only here. No torch: the UI imports this module.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.manifest import RUN_COPY, encode, manifest_path, prompt_style, read_manifest
from training.errors import UserError
from training.prompting import NEWLINE, PromptStyle, default_separator
from training.train.config import RunConfig, retired_values
from training.train.runs import Run, open_run, read_metrics, read_status, runs_root

MODEL_INFO = "talklike.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ModelFolder:
    """A trained model's folder, known from its files alone (no weights loaded)."""

    path: Path
    adapter: bool  # a peft adapter (adapter_config.json), else a full model (config.json)
    seq2seq: bool
    adapter_base: str  # adapter_config.json's base_model_name_or_path; "" for a full model
    info: dict[str, Any]  # talklike.json; {} for a folder talklike did not write
    has_tokenizer: bool

    def prompt(self) -> PromptStyle:
        """How to build this model's prompts: talklike.json's "prompt", else what older files said."""
        if "prompt" in self.info:
            return PromptStyle.from_dict(self.info["prompt"], f"{self.path.name}/{MODEL_INFO}", seq2seq=self.seq2seq)
        return _legacy_prompt(self.info, None, self.seq2seq)


def read_model_folder(path: str | os.PathLike) -> ModelFolder | None:
    """The model in `path`; None when it holds neither adapter_config.json nor config.json."""
    path = Path(path)
    adapter_config = _read_json(path / "adapter_config.json")
    adapter = (path / "adapter_config.json").is_file()
    if not adapter and not (path / "config.json").is_file():
        return None
    if adapter:
        seq2seq = adapter_config.get("task_type") == "SEQ_2_SEQ_LM"
    else:
        seq2seq = bool(_read_json(path / "config.json").get("is_encoder_decoder"))
    return ModelFolder(
        path=path,
        adapter=adapter,
        seq2seq=seq2seq,
        adapter_base=str(adapter_config.get("base_model_name_or_path") or ""),
        info=_read_json(path / MODEL_INFO),
        has_tokenizer=any((path / name).is_file() for name in TOKENIZER_FILES),
    )


@dataclass(frozen=True)
class RunRecord:
    run: Run
    config: RunConfig
    status: dict[str, Any]
    manifest: dict[str, Any] | None  # the persona manifest it trained on (or will train on)
    model: ModelFolder | None  # final/, once training saved it

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def final_dir(self) -> Path:
        return self.run.final_dir

    @property
    def adapter(self) -> bool:
        return self.model is not None and self.model.adapter

    @property
    def seq2seq(self) -> bool:
        return self.model is not None and self.model.seq2seq

    @functools.cached_property
    def prompt(self) -> PromptStyle:
        """The prompt settings the model was trained with, which chat repeats."""
        if self.model is not None and "prompt" in self.model.info:  # what the trainer recorded
            return self.model.prompt()
        return run_prompt(self.run, self.config, self.manifest, self.seq2seq)

    @functools.cached_property
    def base_model(self) -> str:
        """What from_pretrained loads the base from: the adapter's base, found again if its folder moved."""
        from training.models import resolve

        found = [self.model.adapter_base, str(self.model.info.get("base_model") or "")] if self.model else []
        for base in found:
            if base and (not Path(base).is_absolute() or Path(base).exists()):
                return base
        return resolve(self.config.model)

    @property
    def info(self) -> dict[str, Any]:
        """talklike.json as an export writes it: the run's own, filled in from the config for older runs."""
        config = self.config
        defaults = {
            "model": config.model,
            "method": config.method,
            "seq2seq": self.seq2seq,
            "chat_template": config.chat_template,
            "max_length": config.max_length,
        }
        written = self.model.info if self.model is not None else {}
        return model_info(self.prompt, {**defaults, **written, "base_model": self.base_model})

    def metrics(self) -> list[dict[str, Any]]:
        return [record for record in read_metrics(self.run)[0] if isinstance(record, dict)]


def read_run(run: str | os.PathLike) -> RunRecord:
    """The run at `run`: a run folder, its final/ folder, or a run name under the runs folder."""
    path = Path(run)
    if path.name == "final" and (path.parent / "config.yaml").is_file():
        path = path.parent
    if not (path / "config.yaml").is_file() and (runs_root() / str(run)).is_dir():
        path = runs_root() / str(run)
    opened = open_run(path)
    config = opened.config()
    manifest = run_manifest(opened, config)
    return RunRecord(opened, config, read_status(opened), manifest, read_model_folder(opened.final_dir))


def run_manifest(run: Run, config: RunConfig) -> dict[str, Any] | None:
    """The manifest the run trained on (its copy), else the one beside its training data, else None."""
    copied = read_manifest(run.path / RUN_COPY)
    if copied is not None or not config.train_file:
        return copied
    return read_manifest(manifest_path(config.train_file))


def record_manifest(run: Run, config: RunConfig, resume: bool) -> dict[str, Any] | None:
    """Copy the training data's manifest into the run folder (a resume keeps the copy it has)."""
    copy = run.path / RUN_COPY
    if resume and copy.is_file():
        return read_manifest(copy)
    manifest = read_manifest(manifest_path(config.train_file)) if config.train_file else None
    if manifest is None:
        copy.unlink(missing_ok=True)  # an earlier attempt's copy would describe other data
        return None
    temp = copy.with_name(f".{RUN_COPY}.tmp")
    temp.write_text(encode(manifest), encoding="utf-8")
    os.replace(temp, copy)
    return manifest


def run_prompt(run: Run, config: RunConfig, manifest: dict[str, Any] | None, seq2seq: bool) -> PromptStyle:
    """The prompt settings of a run: its manifest's, else what older runs recorded, else the defaults.

    The system prompt falls back to the config's (training adds it to rows without one) and then to
    the first training row's own system message.
    """
    if manifest is not None:
        style = prompt_style(manifest, str(run.path / RUN_COPY), seq2seq=seq2seq)
    else:
        info = _read_json(run.final_dir / MODEL_INFO)
        style = _legacy_prompt(info, run.config_path, seq2seq)
    if not style.system_prompt:
        system = config.system_prompt or _system_prompt_in(config.train_file)
        style = dataclasses.replace(style, system_prompt=system)
    return style


def _legacy_prompt(info: dict[str, Any], config_path: Path | None, seq2seq: bool) -> PromptStyle:
    # Before manifests: seq2seq runs joined with the config's separator (recorded in talklike.json),
    # causal chat kept newlines; prompts kept every turn that fit.
    if not seq2seq:
        return PromptStyle(separator=NEWLINE, system_prompt=str(info.get("system_prompt") or ""))
    separator = info.get("separator") or (retired_values(config_path).get("separator") if config_path else None)
    separator = separator if isinstance(separator, str) and separator else default_separator(seq2seq)
    return PromptStyle(separator=separator, system_prompt=str(info.get("system_prompt") or ""))


def _system_prompt_in(train_file: str) -> str:
    """The system message of the first training row: the data may carry its own."""
    try:
        with open(train_file, encoding="utf-8") as handle:
            row = json.loads(handle.readline())
        first = (row.get("prompt") or row["messages"])[0]  # prompt/completion or messages rows
        return first["content"] if first["role"] == "system" else ""
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""  # data moved or not chat rows: chat without a system prompt, as a plain run would


# ---- talklike.json --------------------------------------------------------------------------------


def model_info(prompt: PromptStyle, fields: dict[str, Any]) -> dict[str, Any]:
    """talklike.json's content: the fields, the prompt settings, and the system prompt on its own
    (where older readers look for it)."""
    kept = {key: value for key, value in fields.items() if key != "separator"}  # now inside "prompt"
    return {**kept, "system_prompt": prompt.system_prompt, "prompt": prompt.to_dict()}


def write_model_info(folder: Path, info: dict[str, Any]) -> Path:
    path = folder / MODEL_INFO
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path.parent.name}/{path.name}: not valid JSON ({error})") from None
    return data if isinstance(data, dict) else {}
