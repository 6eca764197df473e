"""Chat in full precision, 8-bit or 4-bit: what each takes, which one auto picks, and why not on a CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import BitsAndBytesConfig

from training.chat import precision
from training.chat.generate import load_chat_model, load_plan
from training.errors import UserError
from training.tiny import build_tiny_model
from training.train.footprint import architecture

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"  # 494M parameters, 136M of them the tied embedding
MISTRAL = "mistralai/Mistral-7B-v0.1"


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA device with `free` GB free and bitsandbytes installed, as plan_load sees one."""

    def with_free(free_gb: float, bitsandbytes: bool = True):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *args: (int(free_gb * 1024**3), 80 * 1024**3))
        monkeypatch.setattr(precision, "bitsandbytes_installed", lambda: bitsandbytes)

    return with_free


def test_quantized_sizes_shrink_the_linear_layers_only():
    need = precision.memory_needed(architecture(QWEN), cuda=True)
    linear = 494_032_768 - 151_936 * 896  # every weight but the (tied) embedding and the norms' few
    assert need["full"] - need["4bit"] == pytest.approx(linear * (2 - 0.53) / 1024**3, rel=0.01)
    assert need["full"] - need["8bit"] == pytest.approx(linear * (2 - 1.03) / 1024**3, rel=0.01)
    assert need["full"] > precision.RUNTIME_GB + 494e6 * 2 / 1024**3


def test_auto_quantizes_only_what_would_not_fit_and_says_so(gpu):
    mistral = architecture(MISTRAL)
    gpu(free_gb=15)  # a 16 GB T4
    plan = precision.plan_load(mistral, "auto", "cuda")
    assert plan.mode == "8bit" and plan.label == "8-bit"
    assert "bf16 would need about 14.5 GB" in plan.note and "15.0 GB free on the GPU" in plan.note
    gpu(free_gb=6)
    assert precision.plan_load(mistral, "auto", "cuda").mode == "4bit"
    gpu(free_gb=70)
    roomy = precision.plan_load(mistral, "auto", "cuda")
    assert (roomy.mode, roomy.label) == ("full", "bf16") and "it fits" in roomy.note
    gpu(free_gb=6, bitsandbytes=False)  # nothing smaller to offer: full precision, and a warning
    assert "may not fit" in precision.plan_load(mistral, "auto", "cuda").note
    with pytest.raises(UserError, match="load_in 8bit: needs bitsandbytes"):
        precision.plan_load(mistral, "8bit", "cuda")


def test_quantized_loading_asks_transformers_for_bitsandbytes_on_the_chosen_gpu(gpu):
    gpu(free_gb=70)
    plan = precision.plan_load(architecture(QWEN), "4bit", "cuda:1")
    arguments = precision.load_arguments(plan, "cuda:1")
    quantization = arguments["quantization_config"]
    assert isinstance(quantization, BitsAndBytesConfig) and quantization.load_in_4bit
    assert quantization.bnb_4bit_quant_type == "nf4" and arguments["device_map"] == {"": 1}
    eight = precision.load_arguments(precision.plan_load(architecture(QWEN), "8bit", "cuda"), "cuda")
    assert eight["quantization_config"].load_in_8bit and eight["dtype"] == torch.bfloat16


def test_on_a_cpu_chat_loads_in_fp32_and_8_or_4_bit_is_refused_plainly(tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    assert "fp32 on the CPU" in precision.describe(load_plan(model, "auto", "cpu"))
    chat = load_chat_model(model, device="cpu")
    assert chat.precision == "fp32" and "no CUDA GPU" in chat.load_note
    for mode in ("8bit", "4bit"):
        with pytest.raises(UserError, match=f"load_in {mode}: 8-bit and 4-bit loading need a CUDA GPU.*loads in fp32"):
            load_chat_model(model, device="cpu", load_in=mode)
    with pytest.raises(UserError, match="load_in: 'int3' is not one of auto, full, 8bit, 4bit"):
        load_plan(model, "int3", "cpu")


def test_cli_load_in_on_a_cpu_is_one_line_and_exit_2(tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    command = [sys.executable, "-m", "training", "chat", str(model), "--prompt", "hey", "--load-in", "8bit"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: load_in 8bit: 8-bit and 4-bit loading need a CUDA GPU")
    )
