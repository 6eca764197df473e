"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "discord"
LABEL = "discord"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
