import os

import pytest

# Tests never phone home and never touch the user's real data folder.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.mktemp("talklike-data")
    monkeypatch.setenv("TALKLIKE_DATA_DIR", str(path))
    return path
