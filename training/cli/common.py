"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
from typing import Any


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def unescape(value: str) -> str:
    """Lets `--separator '\\n'` mean a newline, as people type it in a shell."""
    return value.encode("utf-8").decode("unicode_escape") if "\\" in value else value
