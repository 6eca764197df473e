import os

import pytest

# Tests never phone home and never touch the user's real data folder.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The training tests' tiny persona data and micro models (data, llama, blenderbot), for every module.
pytest_plugins = ["tests.train_fixtures"]


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.mktemp("talklike-data")
    monkeypatch.setenv("TALKLIKE_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules that run the tiny models: a 5M-parameter model gains nothing from a second
    thread, and while other processes share the two cores, OpenMP's waiting threads made a
    training step ~40x slower (measured: 54 s vs 1.4 s)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
