"""Pushing an export folder to a Hugging Face Hub repository, private by default.

Every failure becomes a one-line UserError that says what to do (log in, get a write token, pick
another repo name, check the network). The token is only ever handed to huggingface_hub in memory:
it is never written anywhere, and it is scrubbed from any error text before that text is shown.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.errors import UserError

logger = logging.getLogger(__name__)
LOGIN_HINT = (
    "log in with `hf auth login`, set HF_TOKEN, or paste a token (huggingface.co/settings/tokens, with write access)"
)
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{30,}")  # real tokens: hf_ + 34 letters/digits
IGNORED = [".*", "**/.*"]  # hidden files: editor leftovers, .cache from downloads


def resolve_token(token: str | None = None) -> str:
    """The token to push with: the argument, else HF_TOKEN, else the one `hf auth login` stored."""
    from huggingface_hub import get_token

    token = (token or "").strip() or get_token()
    if not token:
        raise UserError(f"token: none found; {LOGIN_HINT}")
    if any(char.isspace() for char in token) or not token.isascii():
        # httpx would put the raw header value, token included, into its error message.
        raise UserError(
            "token: contains spaces, line breaks or non-ASCII characters; copy it again from huggingface.co/settings/tokens"
        )
    return token


def scrub(text: str, token: str | None) -> str:
    """`text` with the token (and anything shaped like a Hub token) replaced by ***."""
    if token:
        text = text.replace(token, "***")
    return _TOKEN_LIKE.sub("hf_***", text)


def push(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
) -> str:
    """Create `repo_id` if needed (private unless told otherwise), upload `folder`; return the repo URL.

    `repo_id` without a namespace goes to the token owner's account. An existing public repo is
    refused when `private` is asked for: uploading would publish the model.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise UserError(f"{folder}: nothing to push; export the run to this folder first")
    token = resolve_token(token)
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(api, repo_id, token):
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        full_id = url.repo_id or repo_id
        if private and not api.repo_info(full_id).private:
            raise UserError(_public_repo_message(api, full_id))
        retarget_card(folder, full_id)
        api.upload_folder(
            folder_path=folder, repo_id=full_id, commit_message="Upload talklike export", ignore_patterns=IGNORED
        )
    logger.info("pushed %s to %s", folder, url)
    return str(url)


@contextmanager
def hub_errors(api, repo_id: str, token: str) -> Iterator[None]:
    """Turns huggingface_hub / network failures into UserErrors a person can act on, token scrubbed."""
    import httpx
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
    )

    try:
        yield
    except UserError as error:
        raise UserError(scrub(str(error), token)) from None
    except OfflineModeIsEnabled:
        raise UserError("push: offline mode is on (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE to push") from None
    except HFValidationError as error:
        first = scrub(str(error).strip().splitlines()[0], token)
        raise UserError(
            f"repo_id: {repo_id!r} is not a valid repo name ({first}); use name or namespace/name"
        ) from None
    except HfHubHTTPError as error:
        message = _http_message(api, repo_id, error)
        raise UserError(scrub(message, token)) from None
    except (httpx.TransportError, ConnectionError) as error:
        reason = scrub(str(error) or type(error).__name__, token)
        raise UserError(
            f"push: cannot reach {api.endpoint} ({reason}); check your internet connection and try again"
        ) from None


# What to tell the user for each refusal; {whose} (a 403's likely cause) needs a whoami call, made only then.
_HTTP_ADVICE = {
    401: "token: rejected by {endpoint} (401, invalid or expired){detail}; {login_hint}",
    403: "repo {repo}: no write access (403){detail}; {whose}",
    404: "repo {repo}: not found or not visible to this token (404){detail}; check the name and your access",
    409: "repo {repo}: conflict (409){detail}; it may be owned by someone else or changed meanwhile: choose another name or push again",
    413: "repo {repo}: upload too large (413){detail}; push the adapter instead of the merged model",
    429: "push: the Hub is rate-limiting this account (429){detail}; wait a few minutes and try again",
}


def _http_message(api, repo_id: str, error) -> str:
    status = error.response.status_code if error.response is not None else None
    said = (getattr(error, "server_message", None) or "").strip().splitlines()
    detail = f" (the Hub said: {said[0][:200]})" if said else ""
    if status in _HTTP_ADVICE:
        whose = _whose(api, repo_id) if status == 403 else ""
        return _HTTP_ADVICE[status].format(
            endpoint=api.endpoint, repo=repo_id, detail=detail, login_hint=LOGIN_HINT, whose=whose
        )
    if status is not None and status >= 500:
        return f"push: the Hub had an internal error ({status}){detail}; try again later"
    return f"push to {repo_id} failed ({status}){detail}"


def _whose(api, repo_id: str) -> str:
    """Why a 403 happened, when whoami can tell: a read-only token, or someone else's namespace."""
    me = _whoami(api)
    if me is None:
        return "use a token with write access, or push to a repo in your own namespace"
    if (me.get("auth", {}).get("accessToken", {}) or {}).get("role") == "read":
        return f"the token of {me.get('name')} is read-only: create one with write access at huggingface.co/settings/tokens"
    return _not_yours(me, repo_id) or "check that the token has write access to this repo"


def _public_repo_message(api, repo_id: str) -> str:
    me = _whoami(api)
    not_yours = _not_yours(me, repo_id) if me else None
    if not_yours:
        return f"repo {repo_id}: already exists and belongs to someone else; {not_yours}"
    return (
        f"repo {repo_id}: already exists and is public, so pushing would publish this model; make it private "
        "in its settings on the Hub, choose another repo name, or push as public on purpose"
    )


def _whoami(api) -> dict | None:
    try:
        return api.whoami()
    except Exception:  # noqa: BLE001 - only used to sharpen the advice in an error message
        return None


def _not_yours(me: dict, repo_id: str) -> str | None:
    name = me.get("name", "")
    namespace = repo_id.split("/")[0] if "/" in repo_id else name
    orgs = {org.get("name") for org in me.get("orgs", []) if isinstance(org, dict)}
    if namespace in (name, *orgs):
        return None
    return f"{namespace!r} is not your namespace (you are {name!r}): push to {name}/{repo_id.split('/')[-1]} instead"


def retarget_card(folder: Path, repo_id: str) -> None:
    """Point the card's usage code at `repo_id` when the export was made for another name."""
    info_path, readme = folder / "talklike.json", folder / "README.md"
    if not info_path.is_file():
        return
    info = json.loads(info_path.read_text(encoding="utf-8"))
    old = info.get("model_id")
    if not old or old == repo_id:
        return
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        readme.write_text(
            text.replace(f"model_id = {json.dumps(old)}", f"model_id = {json.dumps(repo_id)}"), encoding="utf-8"
        )
    info["model_id"] = repo_id
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
