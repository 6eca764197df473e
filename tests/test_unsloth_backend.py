"""How talklike calls Unsloth (checked against unsloth 2026.10.9's source), and its fallback.

Unsloth needs CUDA, so here a stand-in FastLanguageModel records the arguments and returns a real
tiny model: what is asserted is what talklike passes and what it does when Unsloth fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
import torch

from training.errors import UserError
from training.tiny import build_tiny_model
from training.train import methods
from training.train.config import RunConfig

GPU = methods.Hardware(cuda=True, bf16=True)


class StandIn:
    """unsloth.FastLanguageModel as talklike uses it: from_pretrained, then get_peft_model."""

    def __init__(self, fail_with: Exception | None = None):
        self.loaded: dict = {}
        self.adapted: dict = {}
        self.fail_with = fail_with

    def from_pretrained(self, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.loaded = kwargs
        if self.fail_with is not None:
            raise self.fail_with
        return AutoModelForCausalLM.from_pretrained(kwargs["model_name"]), AutoTokenizer.from_pretrained(
            kwargs["model_name"]
        )

    def get_peft_model(self, model, **kwargs):
        self.adapted = kwargs
        return model


@pytest.fixture
def unsloth(monkeypatch):
    def install(fail_with: Exception | None = None) -> StandIn:
        stand_in = StandIn(fail_with)
        module = types.ModuleType("unsloth")
        module.FastLanguageModel = stand_in
        monkeypatch.setitem(sys.modules, "unsloth", module)
        return stand_in

    return install


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("llama") / "model"))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("gpt2") / "model", arch="gpt2"))


def gpu_config(model: str, **fields) -> RunConfig:
    return RunConfig(**{"model": model, "method": "lora", "dtype": "bf16", "use_unsloth": "auto", **fields})


def test_unsloth_loads_the_exact_local_folder_with_llama_targets_and_no_token(unsloth, llama):
    stand_in = unsloth()
    loaded = methods.load_tokenizer(gpu_config(llama), GPU)

    assert loaded.backend == "unsloth" and loaded.model is not None and loaded.backend_note == ""
    args = stand_in.loaded
    assert args["model_name"] == llama and args["use_exact_model_name"] is True and args["local_files_only"] is True
    assert args["dtype"] == torch.bfloat16 and args["load_in_4bit"] is False and args["load_in_8bit"] is False
    assert "token" not in args  # an explicit token makes Unsloth log in, writing it to disk
    assert stand_in.adapted["target_modules"] == methods.LLAMA_LINEARS and "max_seq_length" not in stand_in.adapted

    methods.load_tokenizer(gpu_config(llama, method="qlora"), GPU)
    assert stand_in.loaded["load_in_4bit"] is True


def test_other_architectures_get_all_linear_and_explicit_lists_pass_through(unsloth, gpt2):
    stand_in = unsloth()
    methods.load_tokenizer(gpu_config(gpt2), GPU)
    assert stand_in.adapted["target_modules"] == "all-linear"  # Llama names would match nothing in GPT-2
    methods.load_tokenizer(gpu_config(gpt2, target_modules=["c_attn"]), GPU)
    assert stand_in.adapted["target_modules"] == ["c_attn"]


def test_a_failing_unsloth_falls_back_with_its_reason_or_stops_the_run_when_on(unsloth, llama, capsys):
    unsloth(RuntimeError("Unsloth: Could not find a valid pad token\nmore detail"))
    loaded = methods.load_tokenizer(gpu_config(llama), GPU)

    assert loaded.backend == "transformers+peft" and loaded.model is None
    assert "Could not find a valid pad token" in loaded.backend_note
    assert "training with transformers+peft instead" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"use_unsloth: 'on' but Unsloth could not load .*valid pad token"):
        methods.load_tokenizer(gpu_config(llama, use_unsloth="on"), GPU)


def test_unsloth_that_cannot_be_imported_falls_back(monkeypatch, llama):
    monkeypatch.setitem(sys.modules, "unsloth", None)  # import unsloth -> ImportError
    loaded = methods.load_tokenizer(gpu_config(llama), GPU)
    assert loaded.backend == "transformers+peft" and "Unsloth cannot be imported" in loaded.backend_note


@pytest.mark.parametrize(
    "fields, hardware, reason",
    [
        ({"dtype": "fp32"}, GPU, "dtype fp32"),
        ({"method": "dora"}, GPU, "does not train method dora"),
        ({}, methods.Hardware(cuda=False, bf16=False), "no CUDA GPU"),
    ],
)
def test_runs_unsloth_cannot_train_say_why_and_on_refuses_them(unsloth, llama, fields, hardware, reason):
    stand_in = unsloth()
    config = gpu_config(llama, **fields)
    loaded = methods.load_tokenizer(config, hardware)
    assert loaded.backend == "transformers+peft" and reason in loaded.backend_note and not stand_in.loaded
    with pytest.raises(UserError, match=f"use_unsloth: 'on' but .*{reason}"):
        methods.load_tokenizer(gpu_config(llama, **fields, use_unsloth="on"), hardware)


def test_unsloth_is_imported_with_its_cache_outside_the_working_folder(unsloth, llama, monkeypatch, isolated_data_dir):
    unsloth()
    monkeypatch.delenv("UNSLOTH_COMPILE_LOCATION", raising=False)
    monkeypatch.delenv("UNSLOTH_DISABLE_STATISTICS", raising=False)
    methods.import_unsloth_first(gpu_config(llama), GPU)

    assert os.environ["UNSLOTH_COMPILE_LOCATION"].startswith(str(isolated_data_dir))
    assert os.environ["UNSLOTH_DISABLE_STATISTICS"] == "1"


def test_the_training_process_reaches_unsloth_before_importing_transformers_trl_or_peft(tmp_path):
    spy = (
        "import sys\n"
        "import training.train.methods as methods\n"
        "def first(config, hardware):\n"
        "    print('imported:', sorted(m for m in ('transformers', 'trl', 'peft', 'datasets') if m in sys.modules))\n"
        "    raise SystemExit(0)\n"
        "methods.import_unsloth_first = first\n"
        "from training.cli import main\n"
        f"main(['train', '--preset', 'offline-tiny', '--data', 'unused.jsonl', '--output', {str(tmp_path / 'run')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", spy], capture_output=True, text=True, timeout=120)
    assert "imported: []" in result.stdout, result.stdout + result.stderr
