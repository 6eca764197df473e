"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "telegram"
LABEL = "telegram"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
