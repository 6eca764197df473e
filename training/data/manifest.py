"""A data set's persona manifest: what made `<name>.jsonl`, written beside it as `<name>.persona.json`.

    {"format_version": 1,
     "prompt":  {"separator", "system_prompt" (rendered), "context_turns", "name_prefix_in_groups"},
     "shaping": every ShapingOptions field as chosen ("me", the system prompt with "{me}", gap, filters...),
     "sources": {"formats": {format label: files read}},
     "counts":  {"threads", "conversations", "messages", "examples", "train", "validation", "dropped", ...}}

"prompt" is what training and chat must agree on (training/prompting.py builds both prompts from it);
a run copies the manifest it trained on into its folder as `persona.json`. Names of other people are
not recorded (only the filters the user typed); the file stays in the data folder and the run folder,
and an export carries only its "prompt" part.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.prompting import PromptStyle

FORMAT_VERSION = 1
SUFFIX = ".persona.json"
RUN_COPY = "persona.json"  # the manifest a run trained on, in the run folder


def manifest_path(train_file: str | os.PathLike) -> Path:
    """Where a data set's manifest lives: X.jsonl -> X.persona.json (as X.val.jsonl holds its validation rows)."""
    path = Path(train_file)
    return path.with_name(path.name.removesuffix(".jsonl") + SUFFIX)


def encode(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest at `path`, checked; None when there is none (data sets made before manifests, or by hand)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a readable persona manifest ({error}); prepare the data again") from None
    if not isinstance(data, dict) or not isinstance(data.get("format_version"), int):
        raise UserError(f"{path}: not a persona manifest (no format_version); prepare the data again")
    if data["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path}: format_version {data['format_version']} is newer than this talklike reads "
            f"({FORMAT_VERSION}); update talklike"
        )
    prompt_style(data, str(path))  # a bad "prompt" object fails here, naming the file
    return data


def prompt_style(manifest: dict[str, Any], where: str, seq2seq: bool = False) -> PromptStyle:
    return PromptStyle.from_dict(manifest.get("prompt", {}), where, seq2seq=seq2seq)
