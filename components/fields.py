"""Widgets for settings fields, built from the field's metadata (training/settings.py).

A tab says only where a setting goes and, where it needs one, a special widget (a slider, a
dropdown of files); the label, tooltip, choices and default come from the field, the same text the
CLI and the README show.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from training.settings import default_of, field_named, fields_of, value_types


def setting_widget(cls: type, name: str, widget: Any = None, **options: Any) -> gr.components.Component:
    """The widget for field `name` of `cls`: Dropdown for choices, Checkbox for booleans, Number for
    numbers, Textbox otherwise, or `widget` (a Gradio class) with the same label and tooltip."""
    field = field_named(cls, name)
    meta, types = field.metadata, value_types(cls, name)
    options = {"label": meta["label"], "info": meta["help"], **options}
    if widget is None:
        if "choices" in meta:
            widget, options = gr.Dropdown, {"choices": list(meta["choices"]), **options}
        elif bool in types:
            widget = gr.Checkbox
        elif int in types or float in types:
            widget, options = gr.Number, {"precision": 0 if int in types else None, **options}
        else:
            widget = gr.Textbox
    if "value" not in options and default_of(field) is not None:
        options["value"] = default_of(field)
    return widget(**options)


def unplaced(cls: type, placed: set[str]) -> list[str]:
    """Fields a tab's layout does not name: shown in a catch-all row, so a new setting is never hidden."""
    return [field.name for field in fields_of(cls) if field.name not in placed]
