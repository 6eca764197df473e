"""Finding and loading the model a user names: a Hub id, a local folder, offline-small or offline-tiny."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from training.errors import UserError
from training.paths import subdir

OFFLINE_TINY = "offline-tiny"  # what the UI and presets call the locally built model
OFFLINE_SMALL = "offline-small"  # SmolLM2-135M-Instruct from PyPI, converted on first use (training/offline_small.py)
BUILT_ON_FIRST_USE = (OFFLINE_SMALL, OFFLINE_TINY)  # names, not Hub ids or folders


def tiny_model_path(arch: str = "llama") -> Path:
    """The offline tiny model, built on first use (about a second) into the data folder."""
    from training.tiny import build_tiny_model

    path = subdir("models") / f"tiny-{arch}"
    if not (path / "config.json").exists():
        build_tiny_model(path, arch=arch)
    return path


def resolve(name_or_path: str, report: Callable[[str], None] | None = None, fetch: bool = True) -> str:
    """What from_pretrained should load: offline-small and offline-tiny become their folders, built on first use.

    `report` receives offline-small's progress lines (default: stderr); `fetch=False` refuses to download
    (a UserError instead), for callers such as the estimate that must never wait on the network.
    """
    name = name_or_path.strip()
    if not name:
        raise UserError("model: empty; give a Hub id like Qwen/Qwen2.5-0.5B-Instruct, a local folder, or offline-small")
    if name == OFFLINE_TINY:
        return str(tiny_model_path())
    if name == OFFLINE_SMALL:
        from training import offline_small

        if not fetch and not offline_small.is_ready():
            raise UserError(f"{OFFLINE_SMALL}: not on this machine yet; `python -m training offline-model` fetches it")
        return str(offline_small.ensure(report=report))
    return name


def fetch_steps(name_or_path: str) -> Iterator[str]:
    """Progress lines while a model built on first use is fetched (none when it is a Hub id, a folder or ready).

    For the UI, which shows each line as it comes and then loads the model as usual.
    """
    if name_or_path.strip() == OFFLINE_SMALL:
        from training import offline_small

        yield from offline_small.build()


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
            "check the name, your network, or use offline-small"
        ) from None


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """The tokenizer of a Hub id, folder or offline model, cached for previews (callers that change it load their own)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, resolve(name_or_path), name_or_path)
