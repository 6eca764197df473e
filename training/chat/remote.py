"""A chat model named by Hub id, fetched once into the local cache (the bot Space's model repo).

The chat loader then reads a folder like any other: the persona's system prompt, separator and
fallback template come from the export's talklike.json, and no reply waits on the network.
"""

from __future__ import annotations

from pathlib import Path

from training.errors import UserError
from training.models import OFFLINE_TINY

SKIPPED = ["*.gguf", "*.png", "Modelfile", ".*"]  # not needed to chat; a GGUF can be gigabytes


def is_hub_id(source: str) -> bool:
    text = source.strip()
    return (
        bool(text)
        and text != OFFLINE_TINY
        and not Path(text).expanduser().exists()
        and not text.startswith(("/", ".", "~"))
        and "\\" not in text
        and text.count("/") <= 1
    )


def model_id(source: str) -> str:
    """What clients call the model: the repo id, or a run/model folder's name."""
    return source.strip() if is_hub_id(source) else Path(source).expanduser().resolve().name


def local_copy(source: str) -> str:
    """A local folder for `source`: Hub ids are downloaded (HF_TOKEN reads a private repo); others pass."""
    if not is_hub_id(source):
        return source
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
    )

    try:
        return snapshot_download(source.strip(), ignore_patterns=SKIPPED)
    except HFValidationError:
        raise UserError(f"model {source!r}: not a folder here and not a valid Hub repo id (namespace/name)") from None
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        hint = (
            "not found, or private: give the server read access with HF_TOKEN (on a Space, a secret)"
            if status in (401, 403, 404)
            else f"cannot download it ({type(error).__name__})"
        )
        raise UserError(f"model {source!r}: {hint}") from None
