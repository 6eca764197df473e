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


def owner_only(owner: str | None, denied=None):
    """On a shared Space, let only `owner` (signed in with Hugging Face) use a studio event.

    Gradio injects the signed-in profile into a parameter annotated gr.OAuthProfile; the
    wrapper adds that parameter, checks it, and calls the handler without it. Events stay
    registered (the page needs them) but refuse everyone else, through the API too.
    `owner=None` (a local install) leaves handlers untouched. `denied`, if given, is called
    for the value to show a visitor instead of an error (for timers that poll on their own).
    """

    def decorate(handler):
        if not owner:
            return handler
        signature = inspect.signature(handler)
        profile = inspect.Parameter("oauth_profile", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.OAuthProfile | None)  # fmt: skip

        def allowed(signed_in) -> bool:
            if signed_in is not None and getattr(signed_in, "username", None) == owner:
                return True
            if denied is None:
                raise gr.Error(f"Only {owner} can train or export here: sign in with Hugging Face. Chat is open to everyone.")
            return False

        if inspect.isgeneratorfunction(handler):

            def guarded(*args):
                *rest, signed_in = args
                if allowed(signed_in):
                    yield from handler(*rest)
                else:
                    yield denied()
        else:

            def guarded(*args):
                *rest, signed_in = args
                return handler(*rest) if allowed(signed_in) else denied()

        guarded.__name__ = getattr(handler, "__name__", "studio_event")
        guarded.__signature__ = signature.replace(parameters=[*signature.parameters.values(), profile])
        guarded.__annotations__ = {"oauth_profile": gr.OAuthProfile | None}
        return guarded

    return decorate
