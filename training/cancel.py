"""Stopping a long library step (reading an export, shaping examples, counting tokens) from outside.

A caller that can be cancelled (the Data tab's Cancel button) runs the step inside
`cancellable(event)`; the step's loops call `check_cancelled()` between units of work and raise
`Cancelled` once the event is set, so the work really stops instead of running on in a thread
nobody waits for. Outside `cancellable` (the CLI, tests) the check costs one lookup and never raises.
A context variable, not an argument, so the formats, persona and template functions keep their
signatures; it follows the call into the thread the step runs in.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar

from training.errors import UserError

_CANCEL: ContextVar[threading.Event | None] = ContextVar("talklike_cancel", default=None)


class Cancelled(UserError):
    """The person cancelled the step; nothing it would have written was written."""


@contextlib.contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


def check_cancelled() -> None:
    event = _CANCEL.get()
    if event is not None and event.is_set():
        raise Cancelled("cancelled: stopped before it finished; nothing was saved")
