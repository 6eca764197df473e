"""Where talklike keeps uploads, data sets, runs and exports: never inside the source tree."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

SPACE_STORAGE = Path("/data")  # a Hugging Face Space's persistent storage mount


def data_dir() -> Path:
    """TALKLIKE_DATA_DIR, else a Space's persistent /data, else ~/.talklike."""
    configured = os.environ.get("TALKLIKE_DATA_DIR")
    if configured:
        root = Path(configured).expanduser()
    elif SPACE_STORAGE.is_dir() and os.access(SPACE_STORAGE, os.W_OK):
        root = SPACE_STORAGE / "talklike"
    else:
        root = Path.home() / ".talklike"
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def slug(text: str, fallback: str = "item") -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._").lower()
    return cleaned[:48] or fallback


def timestamped(name: str) -> str:
    return f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
