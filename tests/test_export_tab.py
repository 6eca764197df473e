"""The Export tab through Gradio's API: sizes and card preview, sample replies, export, and a
push to a local Hub over real HTTP with the token typed into the password field."""

import json

import pytest
from gradio_client import Client

import app
from tests.export_runs import adapter_run
from tests.hub_server import HubServer, point_huggingface_hub_at
from tests.ui_client import call, launch

TOKEN = "hf_exportTabSecret1234567890"
ADAPTER = "Adapter only (small; needs the base model)"
MERGED = "Merged full model (loads on its own)"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture
def ui(run):
    demo = app.build_app()
    url = launch(demo)
    yield Client(url, verbose=False)
    demo.close()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(users={TOKEN: "alice"}) as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path)
        yield server


def test_sizes_card_preview_samples_and_merged_export(ui, run, isolated_data_dir):
    sizes, card = call(ui, "/describe_export", **{"Run to export": str(run.path), "What to export": ADAPTER})
    assert "adapter" in sizes and "merged" in sizes and "MB" in sizes
    assert "How to use" in card and "private" in card.lower()
    assert "](loss_curve.png)" not in card  # no broken image: the PNG is only in the export
    filled = call(
        ui,
        "/sample_replies",
        **{
            "Run to export": str(run.path),
            "Sample replies for the model card (optional): type prompts, generate, edit or delete rows": {
                "headers": ["prompt", "reply"],
                "data": [["hey Sam, are we still on for tonight?", ""]],
            },
        },
    )
    assert filled["data"][0][1].strip()

    report = call(
        ui,
        "/export_run",
        **{
            "Run to export": str(run.path),
            "What to export": MERGED,
            "Also write GGUF + Ollama Modelfile": True,
            "GGUF type (k-quants: f16 + the llama-quantize command)": "q4_0",
            "Decoding defaults (Modelfile PARAMETERs, the Space's chat)": "Balanced",
        },
    )
    folder = isolated_data_dir / "exports" / f"{run.path.name}-merged"
    assert f"`{folder}`" in report and (folder / "config.json").is_file() and (folder / "README.md").is_file()
    assert f"GGUF written to `{folder / 'model-q4_0.gguf'}`" in report and "a TEMPLATE for chatml" in report
    modelfile = (folder / "Modelfile").read_text()
    assert "FROM ./model-q4_0.gguf" in modelfile and "PARAMETER temperature 0.7" in modelfile


def test_deploy_a_space_for_friends_from_the_tab(ui, run, hub, isolated_data_dir):
    result = call(
        ui,
        "/deploy_space",
        **{
            "Run to export": str(run.path),
            "What to export": MERGED,
            "Space (you/name)": "alice/sam-bot",
            "Token (write access)": TOKEN,
        },
    )
    assert f"{hub.url}/spaces/alice/sam-bot" in result and TOKEN not in result
    assert "write token" in result  # no read token given: the tab says which token the Space holds
    space = hub.state.repo("alice/sam-bot", "space")
    assert hub.state.repo("alice/sam-bot").private and space.variables["TALKLIKE_CHAT_ONLY"] == "alice/sam-bot"
    assert space.secrets == {"HF_TOKEN": TOKEN} and not any(TOKEN.encode() in c for c in space.files.values())
    with pytest.raises(Exception, match="Space: give a name"):
        call(ui, "/deploy_space", **{"Run to export": str(run.path), "Token (write access)": TOKEN})


def test_push_is_private_by_default_and_the_token_never_surfaces(ui, run, hub, isolated_data_dir):
    result = call(
        ui,
        "/push_run",
        **{"Run to export": str(run.path), "Repository (you/name)": "alice/sam-bot", "Token (write access)": TOKEN},
    )
    assert "alice/sam-bot" in result and "privately" in result and TOKEN not in result
    created = [r for r in hub.state.requests if r.path == "/api/repos/create"]
    sent = json.loads(created[0].body)
    assert sent.get("visibility") == "private" or sent.get("private") is True
    assert hub.state.repo("alice/sam-bot") is not None
    for path in isolated_data_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    for stored in hub.state.repo("alice/sam-bot").files.values():
        assert TOKEN.encode() not in stored


def test_push_without_a_repository_or_token_says_what_to_do(ui, run, hub):
    with pytest.raises(Exception, match="Repository: give a name"):
        call(ui, "/push_run", **{"Run to export": str(run.path)})
    with pytest.raises(Exception, match="hf auth login"):
        call(ui, "/push_run", **{"Run to export": str(run.path), "Repository (you/name)": "alice/sam-bot"})


def test_run_pickers_start_empty_so_choosing_the_first_run_shows_it(run, isolated_data_dir):
    """Gradio preselects a dropdown's first choice unless told not to; choosing that run again would
    then fire no change, and the Export tab would show no sizes and no card for it."""
    import shutil

    from training.train.runs import runs_root

    shutil.copytree(run.path, runs_root() / "sam-bot")
    demo = app.build_app()
    pickers = {c["props"].get("label"): c["props"] for c in demo.get_config_file()["components"]}
    for label in ("Run to export", "Run to report on"):
        assert any("sam-bot" in str(choice) for choice in pickers[label]["choices"]), label
        assert pickers[label].get("value") is None, label
