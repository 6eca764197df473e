"""Finding and loading the model a user names: a Hub id, a local folder, or the offline tiny model."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def load_pretrained(load: Callable[..., Any], source: str, name: str | None = None, **kwargs: Any) -> Any:
    """`load(source, **kwargs)`, a from_pretrained; a name that does not load is the same UserError everywhere.

    `name` is what the person typed (shown in the message), `source` what it resolved to.
    """
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:
        where = "folder" if Path(source).expanduser().exists() else "Hub id"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"model {name or source!r}: cannot load it as a {where} ({first_line[:200]}); "
            "check the name, your network, or use offline-tiny"
        ) from None


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """The tokenizer of a Hub id, folder or offline-tiny, cached for previews (callers that change it load their own)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, resolve(name_or_path), name_or_path)
