"""Starting points for a run, one per seed article, with that article's own numbers.

The recipes are data, in presets.yaml beside this file. Each preset's `source` names the seed and
says which values came from it and which are common defaults filled in where the article gives
none, so a user can tell a recipe from a guess.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from training.errors import UserError
from training.train.config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str
    title: str  # one line for a dropdown
    source: str  # where the numbers come from, shown in the UI
    config: RunConfig
    needs_gpu: bool = False


RECIPES = Path(__file__).with_name("presets.yaml")


def load_presets(path: Path = RECIPES) -> dict[str, Preset]:
    """The recipes of presets.yaml, each config checked field by field as a config.yaml would be."""
    recipes = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        name: Preset(
            name,
            recipe["title"],
            recipe["source"],
            RunConfig.from_dict({**recipe["config"], "preset": name}, where=f"{path.name}: {name}"),
            recipe.get("needs_gpu", False),
        )
        for name, recipe in recipes.items()
    }


PRESETS: dict[str, Preset] = load_presets()

DEFAULT_PRESET = "persona-small"


def get_preset(name: str) -> RunConfig:
    """A fresh copy of the preset's RunConfig (callers may change it freely)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise UserError(f"preset: unknown {name!r}; choose one of {', '.join(PRESETS)}") from None
    return dataclasses.replace(preset.config, target_modules=_copy(preset.config.target_modules))


def _copy(target: str | list[str]) -> str | list[str]:
    return list(target) if isinstance(target, list) else target
