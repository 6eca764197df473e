"""Small helpers every tab shares."""

from __future__ import annotations

import functools
import inspect

import gradio as gr

from training.errors import UserError


def shows_user_errors(handler):
    """Turn the library's UserError into a readable gr.Error instead of a generic 'Error'.

    Generator handlers (streaming replies) stay generators, so Gradio still streams them.
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streaming(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except UserError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        return streaming

    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapped
