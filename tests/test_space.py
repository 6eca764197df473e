"""The bot's own Space, against the local Hub server over real HTTP: the model pushed privately, the
Space created with its files, variables and a read-token secret, and then the Space itself run
from exactly the files the Hub holds, as a Space would, chatting with the private model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from gradio_client import Client

from tests.export_runs import adapter_run
from tests.hub_server import HubServer, point_huggingface_hub_at
from tests.ui_client import call, free_port
from training.chat import decoding, generate
from training.chat.serving import ChatLimits, parse_decoding
from training.errors import UserError
from training.export.save import export_run
from training.export.space import CHAT_PACKAGES, SPACE_CODE, deploy_bot_space

TOKEN = "hf_aliceWriteToken000000000000000001"
READ_TOKEN = "hf_aliceReadToken0000000000000000002"
BOB_TOKEN = "hf_bobWriteToken00000000000000000003"
DECODING = '{"do_sample": false, "max_new_tokens": 12}'
TRAINING_STACK = ("trl", "datasets", "unsloth", "bitsandbytes", "gguf")


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    run = adapter_run(tmp_path_factory)
    return export_run(run.path, tmp_path_factory.mktemp("space-export") / "merged", merge=True)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(
        users={TOKEN: "alice", READ_TOKEN: "alice", BOB_TOKEN: "bob"}, read_only_tokens={READ_TOKEN}
    ) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


def test_deploy_pushes_a_private_model_and_a_space_that_reads_it_with_a_secret(merged, hub):
    limits = ChatLimits(max_new_tokens=20, message_chars=500)
    result = deploy_bot_space(
        merged,
        "alice/sam-bot",
        token=TOKEN,
        read_token=READ_TOKEN,
        hardware="cpu-basic",
        decoding=parse_decoding(DECODING),
        limits=limits,
        endpoint=hub.url,
    )
    assert (
        result["model_url"] == f"{hub.url}/alice/sam-bot" and result["space_url"] == f"{hub.url}/spaces/alice/sam-bot"
    )
    model, space = hub.state.repo("alice/sam-bot"), hub.state.repo("alice/sam-bot", "space")
    assert model.private and not space.private  # the weights stay private; the page is for friends
    assert space.sdk == "gradio" and space.hardware == "cpu-basic"
    shipped = {name.split("/")[0] if name.startswith("training/") else name for name in space.files}
    assert shipped == {".gitattributes", "README.md", "requirements.txt", *SPACE_CODE}
    assert "components/train_tab.py" not in space.files and not any("__pycache__" in name for name in space.files)
    front = yaml.safe_load(space.files["README.md"].decode().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["models"] == ["alice/sam-bot"]
    requirements = space.files["requirements.txt"].decode()
    assert f"gradio=={front['sdk_version']}" in requirements and "download.pytorch.org/whl/cpu" in requirements
    assert not any(name in requirements for name in TRAINING_STACK)
    assert space.variables == {
        "TALKLIKE_CHAT_ONLY": "alice/sam-bot",
        "TALKLIKE_DECODING": space.variables["TALKLIKE_DECODING"],
        **limits.to_env(),
    }
    assert parse_decoding(space.variables["TALKLIKE_DECODING"]) == parse_decoding(DECODING)
    assert space.secrets == {"HF_TOKEN": READ_TOKEN} and result["notes"] == []
    secrets = (TOKEN.encode(), READ_TOKEN.encode())
    assert not [
        name for repo in (model, space) for name, content in repo.files.items() if any(s in content for s in secrets)
    ]
    assert hub.state.unhandled == []


def test_the_deployed_space_runs_from_its_own_files_and_chats_with_the_private_model(merged, hub, tmp_path):
    deploy_bot_space(
        merged,
        "alice/sam-bot",
        token=TOKEN,
        read_token=READ_TOKEN,
        decoding=parse_decoding(DECODING),
        limits=ChatLimits(max_new_tokens=20),
        endpoint=hub.url,
    )
    space = hub.state.repo("alice/sam-bot", "space")
    checkout = tmp_path / "space"
    for name, content in space.files.items():  # what the Space's container clones
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes(content)
    port, modules = free_port(), tmp_path / "modules.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TALKLIKE_", "PYTHONPATH"))}
    env.update(
        space.variables,
        **space.secrets,
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        TALKLIKE_DATA_DIR=str(tmp_path / "data"),
    )
    # A Space's container starts the app with Ctrl-C's default handling; a library in this test process
    # may have left SIGINT ignored or blocked, which the child would inherit and then never stop.
    runner = (
        "import atexit, json, runpy, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
        f"atexit.register(lambda: open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['app.py']\nrunpy.run_path('app.py', run_name='__main__')\n"
    )
    log = tmp_path / "space.log"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall the app
        space_app = subprocess.Popen(
            [sys.executable, "-c", runner], cwd=checkout, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    client = None
    try:
        url = _wait_until_serving(space_app, port, log)
        message = "hey Sam, are we still on for tonight?"
        client = Client(url, verbose=False)
        _, tuned, _, _ = call(client, "/chat", Message=message)  # the page's defaults: the variables
        local = generate.load_chat_model(str(merged))
        expected = generate.reply(local, [], message, decoding.preset("Greedy", max_new_tokens=12))
        replies = [
            m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
            for m in tuned
            if m["role"] == "assistant"
        ]
        assert "\n".join(replies) == "\n".join(generate.split_bubbles(expected, local.separator))
    finally:
        if client is not None:  # its open event stream would hold the server's graceful shutdown
            client.close()
        space_app.send_signal(signal.SIGINT)
        space_app.wait(timeout=60)
    output = log.read_text()
    assert hub.requests("GET", "/alice/sam-bot/resolve/")  # it fetched the private weights, with the secret
    assert all(
        r.headers.get("authorization") == f"Bearer {READ_TOKEN}"
        for r in hub.requests(contains="/alice/sam-bot/resolve/")
    )
    # What talklike's own code imported while the Space ran comes with its requirements.txt (or with theirs).
    loaded = json.loads(modules.read_text())
    assert not {name.split(".")[0] for name in loaded} & set(TRAINING_STACK)
    imported = _third_party_imports(checkout, loaded)
    assert {"torch", "transformers", "gradio", "huggingface_hub", "fastapi", "yaml", "psutil"} & imported
    assert _installed_outside(imported, _closure(CHAT_PACKAGES)) == set()
    assert READ_TOKEN not in output


def test_refusals_before_anything_is_created(merged, hub, tmp_path_factory):
    run = adapter_run(tmp_path_factory)
    adapter = export_run(run.path, tmp_path_factory.mktemp("space-adapter") / "adapter", merge=False)
    with pytest.raises(UserError, match="is a local folder a Space cannot reach; export the merged model"):
        deploy_bot_space(adapter, "alice/sam-bot", token=TOKEN, endpoint=hub.url)
    with pytest.raises(UserError, match="hardware: 'h100'"):
        deploy_bot_space(merged, "alice/sam-bot", token=TOKEN, hardware="h100", endpoint=hub.url)
    assert hub.state.requests == []
    with pytest.raises(UserError, match="read token: cannot read alice/sam-bot, so the Space could not load it"):
        deploy_bot_space(merged, "alice/sam-bot", token=TOKEN, read_token=BOB_TOKEN, endpoint=hub.url)
    assert hub.state.repo("alice/sam-bot", "space") is None


def test_cli_deploys_a_public_model_with_no_secret_and_says_where(hub, monkeypatch, capsys, tmp_path, tmp_path_factory):
    from training.cli import build_parser

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run = adapter_run(tmp_path_factory)
    args = build_parser().parse_args(
        [
            "export",
            str(run.path),
            "--merge",
            "--out",
            str(tmp_path / "out"),
            "--space",
            "alice/pub-bot",
            "--public",
            "--decoding",
            "Balanced",
            "--max-new-tokens",
            "64",
        ]
    )
    result = args.handler(args)
    assert result["space_url"] == f"{hub.url}/spaces/alice/pub-bot" and json.loads(capsys.readouterr().out) == result
    space = hub.state.repo("alice/pub-bot", "space")
    assert not hub.state.repo("alice/pub-bot").private and space.secrets == {}
    assert space.variables["TALKLIKE_MAX_NEW_TOKENS"] == "64"
    assert parse_decoding(space.variables["TALKLIKE_DECODING"]) == parse_decoding("Balanced")


def _wait_until_serving(process: subprocess.Popen, port: int, log: Path, timeout: float = 180) -> str:
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Space app exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("the Space app did not start serving")


def _closure(packages) -> set[str]:
    """The distributions `pip install packages` brings, by their declared (non-extra) requirements."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen, todo = set(), [name.lower().replace("_", "-") for name in packages]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in needs:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return seen


def _third_party_imports(checkout: Path, loaded: list[str]) -> set[str]:
    """Top-level packages that the Space's own loaded modules import (in their source) and that were loaded."""
    import ast

    names = set()
    for module in loaded:
        if module != "app" and not module.startswith(("training.", "components.")):
            continue
        path = checkout / (module.replace(".", "/") + ".py")
        path = path if path.is_file() else path.with_suffix("") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    top_loaded = {name.split(".")[0] for name in loaded}
    return {
        name
        for name in names & top_loaded
        if name not in sys.stdlib_module_names and name not in ("training", "components")
    }


def _installed_outside(modules: set[str], distributions: set[str]) -> set[str]:
    """Top-level modules that come from an installed distribution not in `distributions`."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    return {
        module
        for module in modules
        if module in owners and not any(d.lower().replace("_", "-") in distributions for d in owners[module])
    }
