"""Finding and loading the model a user names: a Hub id, a local folder, or the offline tiny model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from training.errors import UserError
from training.paths import subdir

OFFLINE_TINY = "offline-tiny"  # what the UI and presets call the locally built model


def tiny_model_path(arch: str = "llama") -> Path:
    """The offline tiny model, built on first use (about a second) into the data folder."""
    from training.tiny import build_tiny_model

    path = subdir("models") / f"tiny-{arch}"
    if not (path / "config.json").exists():
        build_tiny_model(path, arch=arch)
    return path


def resolve(name_or_path: str) -> str:
    name = name_or_path.strip()
    if not name:
        raise UserError("model: empty; give a Hub id like Qwen/Qwen2.5-0.5B-Instruct, a local folder, or offline-tiny")
    if name == OFFLINE_TINY:
        return str(tiny_model_path())
    return name


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    source = resolve(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).exists() else "Hub id"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"model {name_or_path!r}: cannot load its tokenizer as a {where} ({first_line[:200]}); "
            "check the name, your network, or use offline-tiny"
        ) from None
