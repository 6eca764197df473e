"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "dataset"
LABEL = "dataset"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
