"""Settings described once: a dataclass field carries its label, help, choices and bounds.

As TRL's config dataclasses do, each field's `metadata` holds what a person needs to know about it.
The CLI builds its flags from it (training/cli/flags.py), the UI its labels, tooltips and choices
(components/fields.py), the README its tables (scripts/settings_doc.py), and validation its bounds
(`bound_problems`), so a new setting is one field plus the code that uses it.

Metadata keys (all optional except label and help):
    label    what the UI shows (and the README's first column)
    help     one sentence: what it does, and what 0 / empty means where that switches it off
    choices  the allowed values, checked by `choice_problems` and offered by the UI and CLI
    min      lowest allowed value (inclusive); `above`: exclusive; `below`: exclusive upper bound
    off      the value that switches the setting off (0 for max_steps, NEFTune...), left out of model cards
    expected the words of the bound's message when the generic ones would not help
    flags    extra CLI spellings kept for people's scripts, e.g. ("--data",)
    parse    turns the text a person types into the field's value (dates), for CLI and UI
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from training.errors import UserError

# Bounds many settings share, spread into setting(): `lora_r: int = setting(16, ..., **WHOLE)`.
WHOLE = {"min": 1}  # counts of steps, ranks, examples
FRACTION = {"min": 0, "below": 1}  # a share of something, below all of it
ZERO_IS_OFF = {"min": 0, "off": 0}  # 0 switches the setting off (max_steps, NEFTune, early stopping)


def setting(
    default: Any = dataclasses.MISSING, *, label: str, help: str, factory: Any = dataclasses.MISSING, **meta: Any
) -> Any:
    """A dataclass field with its description; `factory` for mutable defaults (lists)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"label": label, "help": help, **meta})


def is_off(settings: Any, name: str) -> bool:
    """The field holds its `off` value (a setting switched off, e.g. max_steps 0 = train by epochs)."""
    meta = field_named(type(settings), name).metadata
    return "off" in meta and getattr(settings, name) == meta["off"]


def fields_of(cls: type) -> list[dataclasses.Field]:
    """The described fields of a settings dataclass, in declaration order."""
    return [f for f in dataclasses.fields(cls) if "label" in f.metadata]


def field_named(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def value_types(cls: type, name: str) -> tuple:
    """The types a field accepts: (int,) for `int`, (float, NoneType) for `float | None`."""
    hint = typing.get_type_hints(cls)[name]
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


# ---- validation from the metadata ----------------------------------------------------------------


def choice_problems(settings: Any) -> list[str]:
    problems = []
    for field in fields_of(type(settings)):
        allowed, value = field.metadata.get("choices"), getattr(settings, field.name)
        if allowed is not None and value not in allowed:
            problems.append(f"{field.name}: {value!r} is not one of {', '.join(map(str, allowed))}")
    return problems


def bound_problems(settings: Any) -> list[str]:
    """A message per field outside its min/above/below bounds, e.g. 'lora_r: 0; expected a whole number >= 1'."""
    problems = []
    for field in fields_of(type(settings)):
        meta, value = field.metadata, getattr(settings, field.name)
        if value is None or not {"min", "above", "below"} & set(meta):
            continue
        inside = (
            (meta.get("min") is None or value >= meta["min"])
            and (meta.get("above") is None or value > meta["above"])
            and (meta.get("below") is None or value < meta["below"])
        )
        if not inside or (isinstance(value, float) and not math.isfinite(value)):
            problems.append(f"{field.name}: {value!r}; expected {bound_text(settings, field)}")
    return problems


def bound_text(cls_or_settings: Any, field: dataclasses.Field) -> str:
    """'a whole number >= 1', 'a fraction in [0, 1)', or the field's own `expected` words."""
    meta = field.metadata
    if "expected" in meta:
        return meta["expected"]
    cls = cls_or_settings if isinstance(cls_or_settings, type) else type(cls_or_settings)
    what = "a whole number" if int in value_types(cls, field.name) else "a number"
    if meta.get("min") == 0 and meta.get("below") == 1:
        return "a fraction in [0, 1)"
    low = f" >= {meta['min']:g}" if "min" in meta else f" > {meta['above']:g}" if "above" in meta else ""
    high = f" and < {meta['below']:g}" if "below" in meta else ""
    return what + low + high


# ---- coercion ------------------------------------------------------------------------------------
# Hand-written because YAML 1.1 reads "2e-4" as a string and UI fields and CLI flags arrive as
# strings; a schema library (pydantic) would be a new dependency for ~40 lines.


def coerce_fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """`data` with every value turned into its field's type; UserError naming the field otherwise."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        key = unknown[0]
        guess = difflib.get_close_matches(str(key), names, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f"; known fields: {', '.join(names)}"
        raise UserError(f"{where}: unknown field {key!r}{hint}")
    return {key: coerce(cls, key, value, where) for key, value in data.items()}


def coerce(cls: type, name: str, value: Any, where: str) -> Any:
    parse = field_named(cls, name).metadata.get("parse")
    if parse is not None and isinstance(value, str):
        return parse(value, name)
    options = value_types(cls, name)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if type(None) in options:
            return None
        if field_named(cls, name).metadata.get("min") == 0 and options[0] in (int, float):
            return options[0](0)  # 0 is "off" (max_steps, NEFTune...); older config files wrote null
    for option in options:
        converted = _convert(value, option)
        if converted is not _FAILED:
            return converted
    expected = " or ".join(_TYPE_WORDS.get(option, str(option)) for option in options)
    raise UserError(f"{where}: {name}: {value!r} is not {expected}")


_FAILED = object()
_TYPE_WORDS = {
    int: "a whole number",
    float: "a number",
    bool: "true/false",
    str: "text",
    list[str]: "a list of names",
    type(None): "empty",
}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _convert(value: Any, option: Any) -> Any:
    if option is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        return _FAILED
    if option in (int, float):
        return _number(value, option)
    if option is str:
        return value if isinstance(value, str) else _FAILED
    if option == list[str]:
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return [item.strip() for item in value]
        return _FAILED
    return _FAILED if value is None else value


def _number(value: Any, option: type) -> Any:
    if isinstance(value, bool):
        return _FAILED
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _FAILED
    if option is float:
        return number
    return int(number) if math.isfinite(number) and number == int(number) else _FAILED
