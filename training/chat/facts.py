"""Facts: the person's own short list (name, city, job, ...), saved as X.facts.txt beside the data set
X.jsonl and always given to the model with the memories when memory is on."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from training.errors import UserError

FACTS_SUFFIX = ".facts.txt"
MAX_FACTS, MAX_FACT_CHARS = 30, 200  # they go into every prompt


def facts_path(train_file: str | os.PathLike) -> Path:
    path = Path(train_file)
    return path.with_name(path.name.removesuffix(".jsonl") + FACTS_SUFFIX)


def read_facts(path: str | os.PathLike | None) -> list[str]:
    """The facts in a text file, one per line (blank lines and '#' comments skipped); [] when there is none."""
    if path is None:
        return []
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path.name}: not a readable facts file ({error}); expected UTF-8 text, one fact per line"
        ) from None
    return check_facts(text.splitlines(), path.name)


def check_facts(lines: Iterable[str], where: str = "facts") -> list[str]:
    facts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if len(facts) > MAX_FACTS:
        raise UserError(f"{where}: {len(facts)} facts; keep at most {MAX_FACTS} (they go into every prompt)")
    long = next((fact for fact in facts if len(fact) > MAX_FACT_CHARS), None)
    if long is not None:
        raise UserError(
            f"{where}: a fact of {len(long)} characters ({long[:30]!r}...); keep each under {MAX_FACT_CHARS}"
        )
    return facts


def write_facts(path: str | os.PathLike, facts: Iterable[str]) -> Path:
    """Save the facts (checked) atomically, one per line."""
    path = Path(path)
    checked = check_facts(facts, path.name)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text("".join(f"{fact}\n" for fact in checked), encoding="utf-8")
    os.replace(temp, path)
    return path
