"""Small helpers every tab shares."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Owner:
    """Who may use the studio on a shared server, and how the server knows it is them.

    via "oauth": signed in with Hugging Face on a Space whose OAuth is real (app.py checks);
    via "auth": logged in through the app's own --auth login under this user name.
    """

    name: str
    via: str = "oauth"


def as_owner(owner: Owner | str | None) -> Owner | None:
    return Owner(owner) if isinstance(owner, str) and owner else owner or None


def _identity_parameter(owner: Owner) -> inspect.Parameter:
    # Gradio fills a parameter by its annotation: the signed-in Hugging Face profile, or the
    # request (whose .username is the --auth login). Both have .username.
    annotation = gr.OAuthProfile | None if owner.via == "oauth" else gr.Request
    return inspect.Parameter("_visitor", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation)


def _is_owner(owner: Owner, visitor) -> bool:
    return visitor is not None and getattr(visitor, "username", None) == owner.name


def knows_the_owner(owner: Owner | str | None):
    """Call the handler with `is_owner=` whether this request comes from the owner (always True
    without an owner: a local studio belongs to whoever runs it). Same signature trick as owner_only."""
    owner = as_owner(owner)

    def decorate(handler):
        signature = inspect.signature(handler)
        if owner is None:
            if inspect.isgeneratorfunction(handler):

                def trusting(*args):
                    yield from handler(*args, is_owner=True)
            else:

                def trusting(*args):
                    return handler(*args, is_owner=True)

            return _with_signature(trusting, handler, [p for n, p in signature.parameters.items() if n != "is_owner"])
        if inspect.isgeneratorfunction(handler):

            def checking(*args):
                *rest, visitor = args
                yield from handler(*rest, is_owner=_is_owner(owner, visitor))
        else:

            def checking(*args):
                *rest, visitor = args
                return handler(*rest, is_owner=_is_owner(owner, visitor))

        kept = [p for n, p in signature.parameters.items() if n != "is_owner"]
        return _with_signature(checking, handler, [*kept, _identity_parameter(owner)])

    return decorate


def _with_signature(wrapper, handler, parameters: list[inspect.Parameter]):
    wrapper.__name__ = getattr(handler, "__name__", "event")
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
    return wrapper


def owner_only(owner: Owner | str | None, denied=None):
    """On a shared server, let only the owner use a studio event.

    The wrapper adds the identity parameter Gradio fills in (see Owner), checks it, and calls the
    handler without it. Events stay registered (the page needs them) but refuse everyone else,
    through the API too. `owner=None` (a local install) leaves handlers untouched. `denied`, if
    given, is called for the value to show a visitor instead of an error (for timers that poll on
    their own, and page loads).
    """
    owner = as_owner(owner)

    def decorate(handler):
        if owner is None:
            return handler
        signature = inspect.signature(handler)

        def allowed(visitor) -> bool:
            if _is_owner(owner, visitor):
                return True
            if denied is None:
                how = "sign in with Hugging Face" if owner.via == "oauth" else "log in as them"
                raise gr.Error(f"Only {owner.name} can train or export here: {how}. Chat is open to everyone.")
            return False

        if inspect.isgeneratorfunction(handler):

            def guarded(*args):
                *rest, visitor = args
                if allowed(visitor):
                    yield from handler(*rest)
                else:
                    yield denied()
        else:

            def guarded(*args):
                *rest, visitor = args
                return handler(*rest) if allowed(visitor) else denied()

        return _with_signature(guarded, handler, [*signature.parameters.values(), _identity_parameter(owner)])

    return decorate
