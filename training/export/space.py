"""A permanent link for friends: the exported model in a model repo (private by default) and a small
Gradio Space that runs talklike's chat-only page for it.

The Space gets a copy of the files the chat-only page runs (app.py, the chat tab, the training
package), not a pip install: talklike is not a package on PyPI, and a copy pins the exact code that
exported the model, so the Space never changes under the friends' feet. Its requirements are only
what chatting needs (torch, transformers, peft, gradio, huggingface_hub, at the project's pinned
versions, plus pyyaml and psutil; the CPU torch wheel on CPU hardware), never the training stack
(TRL, datasets).

Everything the page needs to know is a Space variable, editable in the Space's settings: the model
id (TALKLIKE_CHAT_ONLY), the decoding defaults (TALKLIKE_DECODING) and the chat limits
(TALKLIKE_MAX_NEW_TOKENS and friends). A private model is read with a token the Space holds as the
secret HF_TOKEN, set through the Hub API and never written into a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from training.errors import UserError
from training.export.hub import IGNORED, hub_errors, push, resolve_token

ROOT = Path(__file__).resolve().parent.parent.parent
# The chat-only page's code: app.py, the chat tab, the server's guards (limits, middleware) and the
# training package (the chat loader reads run records through it), never the studio's other tabs. tests/test_space.py runs a Space built from these.
SPACE_CODE = (
    "app.py",
    "components/__init__.py",
    "components/common.py",
    "components/chat_tab.py",
    "components/chat_reply.py",
    "components/limits.py",
    "components/memory_panel.py",
    "components/server.py",
    "training",
)
# The chat's packages (and what talklike's modules import at load time); never TRL or datasets.
CHAT_PACKAGES = ("torch", "transformers", "peft", "gradio", "huggingface_hub", "pyyaml", "psutil", "scikit_learn")
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
HARDWARE = ("cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large")


def deploy_bot_space(
    export_folder: str | os.PathLike,
    space_id: str,
    *,
    model_repo: str | None = None,
    token: str | None = None,
    read_token: str | None = None,
    public_model: bool = False,
    private_space: bool = False,
    hardware: str = "cpu-basic",
    decoding=None,
    limits=None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Push `export_folder` to `model_repo` (default: the Space's name, as a model repo), then create
    or update the Space `space_id` chatting with it. Returns {"model_url", "space_url", "notes"}.

    The Space reads a private model with `read_token` (best: a read-only token), else with `token`.
    """
    from huggingface_hub import HfApi

    from training.chat.serving import (
        DECODING_ENV,
        ChatLimits,
        decoding_text,
        parse_decoding,
    )

    if hardware not in HARDWARE:
        raise UserError(f"hardware: {hardware!r}; expected one of {', '.join(HARDWARE)}")
    _check_loadable_on_a_space(Path(export_folder))
    token = resolve_token(token)
    notes: list[str] = []
    model_url = push(export_folder, model_repo or space_id, token=token, private=not public_model, endpoint=endpoint)
    model_id = "/".join(model_url.rstrip("/").split("/")[-2:])  # namespace/name, also when none was given
    secret = None if public_model else _model_secret(model_id, token, read_token, endpoint, notes)
    variables = {
        "TALKLIKE_CHAT_ONLY": model_id,
        DECODING_ENV: decoding_text(decoding or parse_decoding(None)),
        **(limits or ChatLimits()).to_env(),
    }
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(api, space_id, token):
        space_url = _upload_space(api, space_id, model_id, hardware, private_space, variables, secret)
    return {"model_url": model_url, "space_url": str(space_url), "notes": notes}


def _model_secret(model_id: str, token: str, read_token: str | None, endpoint: str | None, notes: list[str]) -> str:
    """The token the Space reads the private model with, checked to read it; a note when it is the write token."""
    from huggingface_hub import HfApi

    secret = resolve_token(read_token) if read_token else token
    _check_can_read(HfApi(endpoint=endpoint, token=secret), model_id, secret, "read token" if read_token else "token")
    if not read_token:
        notes.append(
            "The Space reads the private model with your write token (a Space secret). "
            "A read-only token is safer: pass one with --space-read-token."
        )
    return secret


def _upload_space(api, space_id: str, model_id: str, hardware: str, private: bool, variables: dict, secret):
    """Create or update the Space: its hardware, the chat page's files, its variables and the model's read secret."""
    existed = api.repo_exists(space_id, repo_type="space")
    space_url = api.create_repo(
        space_id,
        repo_type="space",
        space_sdk="gradio",
        private=private,
        space_hardware=hardware,
        exist_ok=True,
    )
    full_id = space_url.repo_id or space_id
    if existed:
        api.request_space_hardware(full_id, hardware)
    with tempfile.TemporaryDirectory() as folder:
        stage_space(Path(folder), model_id, hardware)
        api.upload_folder(
            folder_path=folder,
            repo_id=full_id,
            repo_type="space",
            commit_message="Deploy the talklike chat page",
            ignore_patterns=IGNORED,
        )
    for key, value in variables.items():
        api.add_space_variable(full_id, key, value)
    if secret is not None:
        api.add_space_secret(full_id, "HF_TOKEN", secret, description="reads the private model repo")
    return space_url


def stage_space(target: Path, model_id: str, hardware: str = "cpu-basic") -> Path:
    """The Space's files in `target`: the chat page's code, README front matter, requirements."""
    for name in SPACE_CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "requirements.txt").write_text(space_requirements(hardware), encoding="utf-8")
    (target / "README.md").write_text(_readme(model_id, hardware), encoding="utf-8")
    return target


def space_requirements(hardware: str = "cpu-basic") -> str:
    """The project's pins for the chat packages only; CPU hardware takes torch's CPU wheel (no CUDA)."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        text = line.split("#")[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        requirement.extras = set()  # gradio's oauth extra serves owner mode, which a chat-only Space never runs
        name = canonicalize_name(requirement.name).replace("-", "_")
        if name in CHAT_PACKAGES:
            pins[name] = str(requirement)
    missing = [name for name in CHAT_PACKAGES if name not in pins]
    if missing:
        raise UserError(f"requirements.txt: no pin for {', '.join(missing)}")
    head = [CPU_TORCH_INDEX] if hardware.startswith("cpu") else []
    return "\n".join([*head, *(pins[name] for name in CHAT_PACKAGES)]) + "\n"


def _readme(model_id: str, hardware: str) -> str:
    from training.chat.remote import model_id as display_name

    gradio = next(line for line in space_requirements(hardware).splitlines() if line.startswith("gradio"))
    name = display_name(model_id).split("/")[-1]
    return f"""---
title: {name}
emoji: 💬
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio.split("==")[1]}
python_version: "3.11"
app_file: app.py
models:
- {model_id}
short_description: A chatbot that texts like its owner (talklike)
---

# {name}

A chatbot fine-tuned with talklike to text like its owner. Replies are generated by a model, not
real messages.

Settings are Space variables (Settings → Variables and secrets): `TALKLIKE_CHAT_ONLY` (the model
repo), `TALKLIKE_DECODING` (a preset name or JSON decoding settings), `TALKLIKE_MAX_NEW_TOKENS`,
`TALKLIKE_MAX_MESSAGE_CHARS`, `TALKLIKE_MAX_HISTORY_MESSAGES`, `TALKLIKE_CONCURRENCY`,
`TALKLIKE_QUEUE_SIZE`. Add a secret `TALKLIKE_API_KEY` to serve an OpenAI-compatible API at `/v1`.
"""


def _check_loadable_on_a_space(folder: Path) -> None:
    """A Space can only load what the Hub has: an adapter's base must be a Hub id, not a local folder."""
    import json

    from training.chat.remote import is_hub_id

    if not folder.is_dir():
        raise UserError(f"{folder}: no export here; export the run first")
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file() and not (folder / "config.json").is_file():
        base = str(json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path") or "")
        if not is_hub_id(base):
            raise UserError(
                f"{folder.name}: the adapter's base model {base!r} is a local folder a Space cannot "
                "reach; export the merged model instead (--merge)"
            )


def _check_can_read(api, model_id: str, secret: str, which: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.model_info(model_id)
    except HfHubHTTPError:
        raise UserError(
            f"{which}: cannot read {model_id}, so the Space could not load it; use a token of the "
            "repo's owner (or an org member) with read access"
        ) from None
