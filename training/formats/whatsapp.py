"""Placeholder: being written."""
from ..conversation import ImportResult

NAME = "whatsapp"
LABEL = "whatsapp"


def sniff(source) -> bool:
    return False


def parse(sources, options) -> ImportResult:
    raise NotImplementedError
