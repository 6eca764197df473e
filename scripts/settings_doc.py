"""Rewrite README.md's settings tables from the settings' field metadata (training/settings.py).

    python scripts/settings_doc.py           # rewrite the marked sections of README.md
    python scripts/settings_doc.py --check   # exit 1 when README.md is out of date (tests/test_settings_doc.py)

Each table sits between `<!-- settings:NAME -->` and `<!-- /settings:NAME -->`; the text around
them is README's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.data.shaping import ShapingOptions  # noqa: E402
from training.settings import bound_text, default_of, fields_of, value_types  # noqa: E402
from training.train.config import RunConfig  # noqa: E402

README = ROOT / "README.md"


def run_table() -> str:
    rows = ["| `config.yaml` field / `train` flag | default | allowed | what it does |", "|---|---|---|---|"]
    for field in fields_of(RunConfig):
        flags = _flags(field) if field.name != "preset" else "`--preset`"
        rows.append(
            f"| `{field.name}` {flags} | {_default(field)} | {_allowed(RunConfig, field)} | {_cell(field.metadata['help'])} |"
        )
    return "\n".join(rows)


def prepare_table() -> str:
    rows = ["| `prepare` flag | default | allowed | what it does |", "|---|---|---|---|"]
    for field in fields_of(ShapingOptions):
        rows.append(
            f"| {_flags(field)} | {_default(field)} | {_allowed(ShapingOptions, field)} | {_cell(field.metadata['help'])} |"
        )
    return "\n".join(rows)


TABLES = {"train": run_table, "prepare": prepare_table}


def _flags(field) -> str:
    names = [f"--{field.name.replace('_', '-')}", *field.metadata.get("flags", ())]
    if isinstance(default_of(field), bool):
        names = [f"{name}/--no-{name[2:]}" for name in names]
    return " ".join(f"`{name}`" for name in names)


def _default(field) -> str:
    default = default_of(field)
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return "required"
    if default in ("", None, []):
        return "empty"
    return _cell(f"`{default!r}`" if isinstance(default, str) else f"`{default}`")


def _allowed(cls, field) -> str:
    meta = field.metadata
    if "choices" in meta:
        return ", ".join(f"`{choice}`" for choice in meta["choices"])
    if {"min", "above", "below", "expected"} & set(meta):
        return _cell(bound_text(cls, field))
    if meta.get("parse") and float in value_types(cls, field.name):
        return "a date like 2024-05-31"
    return ""


def _cell(text: str) -> str:
    # "<name>" would be read as an HTML tag and vanish from the rendered table
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def rewritten(text: str) -> str:
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- settings:{name} -->\n)(?:.*?\n)?(<!-- /settings:{name} -->)", re.DOTALL)
        match = pattern.search(text)
        if not match:
            raise SystemExit(f"README.md: no <!-- settings:{name} --> ... <!-- /settings:{name} --> section")
        text = text[: match.end(1)] + table() + "\n" + text[match.start(2) :]
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is out of date")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    wanted = rewritten(current)
    if args.check:
        if wanted != current:
            print("README.md: the settings tables are out of date; run python scripts/settings_doc.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
