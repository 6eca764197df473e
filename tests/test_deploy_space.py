"""Deploying as a Space, against the local Hub server over real HTTP: the GPU Space gets Unsloth,
a CPU one never does, the front matter says how Spaces should run it, and owner mode is set."""

import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_server import HubServer, point_huggingface_hub_at

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import deploy_space  # noqa: E402

TOKEN = "hf_deploySpaceToken000000000000"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(users={TOKEN: "alice"}) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


def test_gpu_space_gets_unsloth_and_owner_mode(hub):
    url = deploy_space.deploy("alice/talklike", gpu=True, owner="alice", token=TOKEN, endpoint=hub.url)
    assert url.endswith("/spaces/alice/talklike")
    space = hub.state.repo("alice/talklike", "space")
    requirements = space.files["requirements.txt"].decode()
    assert "unsloth==" in requirements and "bitsandbytes==" in requirements
    # Owner mode signs the owner in with Hugging Face: the Space needs Gradio's OAuth extra.
    assert "gradio[oauth]==6.31.0" in requirements
    assert {"app.py", "training/__main__.py", "components/chat_tab.py", "samples/sam_messenger_export.zip"} <= set(
        space.files
    )
    assert not any("__pycache__" in name or name.startswith("tests/") for name in space.files)
    assert space.variables == {"TALKLIKE_OWNER": "alice"}


def test_cpu_space_never_pulls_cuda_packages(hub):
    deploy_space.deploy("alice/talklike-cpu", gpu=False, owner=None, token=TOKEN, endpoint=hub.url)
    requirements = hub.state.repo("alice/talklike-cpu", "space").files["requirements.txt"].decode()
    assert "unsloth" not in requirements and "bitsandbytes" not in requirements


def test_readme_front_matter_is_a_gradio_space_pinned_to_the_requirements():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---")[1])
    pinned = next(
        line.split("==")[1].split()[0]
        for line in (Path(__file__).resolve().parent.parent / "requirements.txt").read_text().splitlines()
        if line.startswith(("gradio==", "gradio[oauth]=="))
    )
    assert front["sdk"] == "gradio" and front["sdk_version"] == pinned and front["app_file"] == "app.py"
    assert front["hf_oauth"] is True and front["suggested_hardware"].startswith(("t4", "l4", "a10g"))
