"""Command-line flags generated from a settings dataclass's field metadata (training/settings.py).

Every field becomes `--field-name` (booleans `--x/--no-x`, lists a repeatable flag), plus the
spellings in its `flags` metadata; help and choices come from the metadata. Values arrive as text
(booleans as True/False) and default to None ("not given"): the dataclass's own coercion turns them
into values, so a bad value gets the same message as in config.yaml or the UI.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from training.settings import default_of, fields_of, value_types


def add_setting_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    for field in fields_of(cls):
        if field.name in skip:
            continue
        meta = field.metadata
        names = [f"--{field.name.replace('_', '-')}", *meta.get("flags", ())]
        options: dict[str, Any] = {"dest": field.name, "default": None, "help": _help(field)}
        types = value_types(cls, field.name)
        if bool in types:
            options["action"] = argparse.BooleanOptionalAction
        elif list[str] in types and str not in types:
            options.update(
                action="append", metavar=meta.get("metavar", "NAME")
            )  # one flag per name: --exclude-thread A --exclude-thread B
        else:
            metavar = "|".join(map(str, meta["choices"])) if "choices" in meta else field.name.split("_")[-1].upper()
            options["metavar"] = metavar
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            options["required"] = True  # no default: the person must say (prepare --me)
        parser.add_argument(*names, **options)


def setting_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings given on the command line, by field name (fields left out are absent)."""
    return {f.name: value for f in fields_of(cls) if (value := getattr(args, f.name, None)) is not None}


def _help(field) -> str:
    default = default_of(field)
    shown = "" if default in ("", None, []) or isinstance(default, bool) else f" (default {default!r})"
    return field.metadata["help"].replace("%", "%%") + shown
