"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "messenger"
LABEL = "messenger"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
