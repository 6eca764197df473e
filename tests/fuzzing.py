"""Shared pieces of the importers' property-based tests: only a one-line UserError may escape."""

from __future__ import annotations

from hypothesis import strategies as st

from training.data.formats import load_sources
from training.data.sources import SourceFile
from training.errors import UserError


def load_only_user_errors(name: str, data: bytes) -> None:
    try:
        load_sources([SourceFile(name, data)])
    except UserError as error:
        assert str(error) and "\n" not in str(error)


def mutate(original: bytes, data, insertions: list[bytes]) -> bytes:
    """Up to 8 byte flips, deletions, insertions of `insertions` and truncations, drawn from `data`."""
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        if not mutated:
            break
        position = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            mutated[position] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del mutated[position : position + data.draw(st.integers(1, 40))]
        elif action == "insert":
            mutated[position:position] = data.draw(st.sampled_from(insertions))
        else:
            del mutated[position:]
    return bytes(mutated)
