"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "text"
LABEL = "text"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
