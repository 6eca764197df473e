"""Pushing exports to a Hub over real HTTP (tests/hub_server.py on 127.0.0.1), loading them back by
repo id, and keeping the token out of every file, log line and error message."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from tests.export_runs import adapter_run
from tests.hub_server import HubServer, point_huggingface_hub_at
from training.cli import build_parser
from training.errors import UserError
from training.export.hub import push
from training.export.save import export_run

TOKEN = "hf_talklikeTestToken7Qz0123456789abcdef"  # alice, write access
BOB_TOKEN = "hf_bobsOwnWriteToken0987654321"
READ_ONLY_TOKEN = "hf_aliceReadOnlyToken5555555555"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exports(lora, tmp_path_factory):
    root = tmp_path_factory.mktemp("push-exports")
    return {
        "adapter": export_run(lora.path, root / "adapter", merge=False),
        "merged": export_run(lora.path, root / "merged", merge=True),
    }


@pytest.fixture
def hub(monkeypatch, tmp_path):
    users = {TOKEN: "alice", BOB_TOKEN: "bob", READ_ONLY_TOKEN: "alice"}
    with HubServer(users=users, read_only_tokens={READ_ONLY_TOKEN}) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


def load_from_hub(hub: HubServer, repos: dict[str, str], inputs, home: Path) -> dict[str, torch.Tensor]:
    """Logits of each {name: repo_id} loaded by id in a fresh process whose env points at `hub`.

    A subprocess, because huggingface_hub and transformers read HF_ENDPOINT when imported.
    """
    torch.save({"inputs": dict(inputs), "repos": repos}, home / "request.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "from peft import AutoPeftModelForCausalLM\n"
        "request = torch.load(sys.argv[1])\n"
        "out = {}\n"
        "for name, repo in request['repos'].items():\n"
        "    loader = AutoPeftModelForCausalLM if name.startswith('peft') else AutoModelForCausalLM\n"
        "    with torch.no_grad():\n"
        "        out[name] = loader.from_pretrained(repo).eval()(**request['inputs']).logits\n"
        "torch.save(out, sys.argv[2])\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(home / "request.pt"), str(home / "logits.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (home / "load.log").write_text(done.stdout + done.stderr)  # kept for the token grep
    return torch.load(home / "logits.pt")


def test_pushed_exports_load_by_repo_id_with_the_run_outputs(lora, exports, hub, tmp_path):
    adapter_url = push(exports["adapter"], "alice/sam-adapter", token=TOKEN, endpoint=hub.url)
    merged_url = push(exports["merged"], "alice/sam-merged", token=TOKEN, endpoint=hub.url, private=False)
    assert adapter_url == f"{hub.url}/alice/sam-adapter" and merged_url == f"{hub.url}/alice/sam-merged"

    created = [request.json() for request in hub.requests("POST", "/api/repos/create")]
    assert [body["visibility"] for body in created] == ["private", "public"]
    assert hub.state.repo("alice/sam-adapter").private and not hub.state.repo("alice/sam-merged").private
    for name, repo_id in (("adapter", "alice/sam-adapter"), ("merged", "alice/sam-merged")):
        stored = hub.state.repo(repo_id).files
        local = {path.name: path.read_bytes() for path in exports[name].iterdir()}
        assert {path: stored[path] for path in local} == local
        assert f'model_id = "{repo_id}"' in stored["README.md"].decode()

    logits = load_from_hub(
        hub,
        {"peft-adapter": "alice/sam-adapter", "auto-adapter": "alice/sam-adapter", "merged": "alice/sam-merged"},
        lora.inputs,
        tmp_path,
    )
    for name, value in logits.items():
        assert torch.allclose(value, lora.logits, atol=1e-5, rtol=0), name
    assert hub.state.unhandled == []
    assert hub.requests("HEAD", "/alice/sam-adapter/resolve/main/adapter_config.json")


def test_the_token_is_sent_but_never_written_logged_or_shown(lora, exports, hub, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")  # its library logger sits at WARNING by default
    folder = export_run(lora.path, tmp_path / "export", merge=False)
    push(folder, "alice/sam-private", token=TOKEN, endpoint=hub.url)
    messages = []
    for repo_id, endpoint in (("bob/not-mine", hub.url), ("alice/offline", "http://127.0.0.1:9")):
        with pytest.raises(UserError) as caught:
            push(folder, repo_id, token=TOKEN, endpoint=endpoint)
        messages.append(str(caught.value))
    load_from_hub(hub, {"peft": "alice/sam-private"}, lora.inputs, tmp_path)  # token given via env only

    authorizations = [request.headers.get("authorization") for request in hub.state.requests]
    assert f"Bearer {TOKEN}" in authorizations  # it did travel, so finding it anywhere else would be a leak
    written = [path for root in (lora.path, folder, tmp_path) for path in root.rglob("*") if path.is_file()]
    assert len(written) > 20
    leaks = [str(path) for path in written if TOKEN.encode() in path.read_bytes()]
    leaks += [
        f"server file {repo.repo_id}/{name}"
        for repo in hub.state.repos.values()
        for name, content in repo.files.items()
        if TOKEN.encode() in content
    ]
    leaks += [
        f"request {r.method} {r.path}" for r in hub.state.requests if TOKEN.encode() in r.body or TOKEN in str(r.query)
    ]
    captured = capfd.readouterr()
    leaks += [
        name
        for name, text in (("log", caplog.text), ("stdout", captured.out), ("stderr", captured.err))
        if TOKEN in text
    ]
    leaks += [message for message in messages if TOKEN in message]
    assert leaks == []
    assert "(authenticated: True)" in caplog.text  # debug logging was on: the check covered its request log


def test_push_needs_a_token_and_finds_it_in_hf_token(exports, hub, monkeypatch):
    with pytest.raises(
        UserError, match=r"token: none found; log in with `hf auth login`, set HF_TOKEN, or paste a token"
    ):
        push(exports["adapter"], "alice/sam", endpoint=hub.url)
    assert hub.state.requests == []  # nothing was sent anonymously

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert push(exports["adapter"], "alice/sam", endpoint=hub.url).endswith("/alice/sam")
    assert push(exports["adapter"], "alice/sam2", token=f"  {TOKEN}\n").endswith("/alice/sam2")  # pasted with a newline
    with pytest.raises(UserError, match="spaces, line breaks"):
        push(exports["adapter"], "alice/sam3", token="hf_abc def")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "repo_id, token, expected",
    [
        (
            "bob/sam",
            TOKEN,
            r"no write access \(403\).*'bob' is not your namespace \(you are 'alice'\): push to alice/sam instead",
        ),
        ("alice/sam", READ_ONLY_TOKEN, r"no write access \(403\).*read-only: create one with write access"),
        ("alice/sam", "hf_expiredOrWrongToken123", r"token: rejected .*\(401, invalid or expired\).*hf auth login"),
        ("not a name!", TOKEN, r"repo_id: 'not a name!' is not a valid repo name"),
    ],
)
def test_push_refusals_say_what_to_do(exports, hub, repo_id, token, expected):
    with pytest.raises(UserError, match=expected):
        push(exports["adapter"], repo_id, token=token, endpoint=hub.url)
    assert hub.requests("POST", "/commit/") == []


def test_push_to_a_server_that_is_down_or_offline_mode(exports, hub, monkeypatch):
    down = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(UserError, match=rf"cannot reach {down} \(.*refused.*\); check your internet connection"):
        push(exports["adapter"], "alice/sam", token=TOKEN, endpoint=down)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="offline mode is on.*unset HF_HUB_OFFLINE"):
        push(exports["adapter"], "alice/sam", token=TOKEN, endpoint=hub.url)


def test_existing_repos_owned_by_others_or_public_are_not_overwritten(exports, hub):
    hub.state.add_repo("bob/shared", owner="bob", private=False)
    hub.state.add_repo("alice/was-public", owner="alice", private=False)
    with pytest.raises(UserError, match="bob/shared: already exists and belongs to someone else.*push to alice/shared"):
        push(exports["adapter"], "bob/shared", token=TOKEN, endpoint=hub.url)
    with pytest.raises(UserError, match=r"bob/shared: no write access \(403\)"):
        push(exports["adapter"], "bob/shared", token=TOKEN, endpoint=hub.url, private=False)
    with pytest.raises(UserError, match="alice/was-public: already exists and is public, so pushing would publish"):
        push(exports["adapter"], "alice/was-public", token=TOKEN, endpoint=hub.url)
    assert set(hub.state.repo("bob/shared").files) == {".gitattributes"}
    assert set(hub.state.repo("alice/was-public").files) == {".gitattributes"}
    # Pushing again to one's own private repo is fine (409 on create is "exists"), and updates it.
    push(exports["adapter"], "alice/again", token=TOKEN, endpoint=hub.url)
    push(exports["adapter"], "alice/again", token=TOKEN, endpoint=hub.url)
    statuses = [request for request in hub.requests("POST", "/api/repos/create")]
    assert len(statuses) == 5 and "README.md" in hub.state.repo("alice/again").files


def test_repo_name_without_namespace_goes_to_the_token_owner(exports, hub):
    url = push(exports["merged"], "sam-bot", token=TOKEN, endpoint=hub.url)
    assert url == f"{hub.url}/alice/sam-bot"
    assert 'model_id = "alice/sam-bot"' in hub.state.repo("alice/sam-bot").files["README.md"].decode()


def test_cli_exports_and_pushes_public_on_request(lora, hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    parser = build_parser()
    args = parser.parse_args(
        ["export", str(lora.path), "--adapter", "--out", str(tmp_path / "out"), "--push", "alice/cli-bot", "--public"]
    )
    result = args.handler(args)
    assert result["url"] == f"{hub.url}/alice/cli-bot" and json.loads(capsys.readouterr().out) == result
    assert not hub.state.repo("alice/cli-bot").private
    assert 'model_id = "alice/cli-bot"' in (tmp_path / "out" / "README.md").read_text()
    with pytest.raises(UserError, match="--public: only means something with --push"):
        args = parser.parse_args(["export", str(lora.path), "--adapter", "--out", str(tmp_path / "o2"), "--public"])
        args.handler(args)
