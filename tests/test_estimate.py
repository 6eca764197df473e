"""The pre-flight estimate: exact parameter counts and memory arithmetic that moves the right way."""

import dataclasses

import pytest
from transformers import AutoModelForCausalLM

from training.errors import UserError
from training.tiny import build_tiny_model
from training.train.config import RunConfig
from training.train.estimate import (
    Device,
    device_by_name,
    estimate,
    format_estimate,
)
from training.train.footprint import architecture, count_parameters
from training.train.presets import get_preset

A10G = Device("Nvidia A10G large", 24, 70, 1.50)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama"))


def test_parameter_counts_match_the_real_model_and_adapter(tiny):
    from peft import LoraConfig, get_peft_model

    config = RunConfig(model=tiny, method="lora", lora_r=8, target_modules="all-linear")
    total, trainable = count_parameters(config, architecture(tiny))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=8, target_modules="all-linear"))
    real_trainable, real_total = model.get_nb_trainable_parameters()
    assert (total, trainable) == (real_total, real_trainable)
    full = dataclasses.replace(config, method="full")
    assert count_parameters(full, architecture(tiny)) == (real_total - real_trainable,) * 2


def test_preset_models_are_estimated_offline_with_their_published_sizes():
    total, trainable = count_parameters(get_preset("persona-small"), architecture("Qwen/Qwen2.5-0.5B-Instruct"))
    assert 490e6 < total < 510e6 and 8e6 < trainable < 9e6
    mistral = get_preset("mistral-qlora-alpaca")
    total, _ = count_parameters(mistral, architecture(mistral.model))
    assert 7.2e9 < total < 7.3e9


def test_memory_moves_the_way_each_lever_promises():
    base = get_preset("mistral-qlora-alpaca")
    lora16 = dataclasses.replace(base, method="lora", optimizer="adamw_torch", activation_checkpointing=False)
    plain = estimate(lora16, examples=100, device=A10G)
    assert plain.memory_gb["weights"] > 13  # 7.2B params in bf16
    assert not plain.fits and plain.notes
    qlora = estimate(dataclasses.replace(lora16, method="qlora"), examples=100, device=A10G)
    # nf4 is ~0.53 bytes a weight, but peft casts the unquantized embeddings and head to fp32
    assert qlora.memory_gb["weights"] < plain.memory_gb["weights"] / 2.5
    checkpointed = estimate(dataclasses.replace(lora16, activation_checkpointing=True), examples=100, device=A10G)
    assert checkpointed.memory_gb["activations"] < plain.memory_gb["activations"] / 5
    eight_bit = estimate(dataclasses.replace(lora16, optimizer="adamw_8bit"), examples=100, device=A10G)
    assert eight_bit.memory_gb["optimizer"] == pytest.approx(plain.memory_gb["optimizer"] / 4, rel=0.01)
    half_batch = estimate(dataclasses.replace(lora16, batch_size=2), examples=100, device=A10G)
    assert half_batch.memory_gb["activations"] == pytest.approx(plain.memory_gb["activations"] / 2, rel=0.01)
    assert estimate(base, examples=100, device=A10G).fits


def test_full_fine_tuning_pays_seed_001s_bytes_per_parameter(tiny):
    config = RunConfig(model=tiny, method="full", dtype="fp32", optimizer="adamw_torch")
    result = estimate(config, examples=10, device=Device("CPU test", 8, 0.1, 0.0))
    params_gb = result.total_params / 1024**3
    assert result.memory_gb["weights"] == pytest.approx(4 * params_gb, rel=1e-3)
    assert result.memory_gb["gradients"] == pytest.approx(4 * params_gb, rel=1e-3)
    assert result.memory_gb["optimizer"] == pytest.approx(8 * params_gb, rel=1e-3)


def test_time_and_cost_follow_steps_and_price(tiny):
    config = RunConfig(model=tiny, method="lora", max_steps=100, batch_size=4)
    result = estimate(config, examples=50, device=A10G)
    assert result.total_steps == 100
    assert result.dollars == pytest.approx(result.hours * 1.50)
    double = estimate(dataclasses.replace(config, max_steps=200), examples=50, device=A10G, dollars_per_hour=3.0)
    assert double.hours == pytest.approx(2 * result.hours) and double.dollars == pytest.approx(4 * result.dollars)
    text = format_estimate(result)
    assert "trainable" in text and "Peak memory" in text and "100 steps" in text


def test_unknown_device_and_unreadable_model_are_user_errors():
    with pytest.raises(UserError, match="device: unknown 'TPU'"):
        device_by_name("TPU")
    with pytest.raises(UserError, match="no/such-model"):
        architecture("no/such-model")


def test_gpu_loss_is_the_tiled_head_not_the_logits_and_unsloth_keeps_unquantized_weights_in_bf16():
    config = dataclasses.replace(get_preset("persona-small"), max_length=2048, batch_size=8)
    cpu_like = estimate(dataclasses.replace(config, dtype="bf16"), examples=100, device=Device("CPU test", 64, 1, 0))
    gpu = estimate(config, examples=100, device=A10G, backend="transformers+peft")
    # 16k tokens x 152k vocabulary would be ~12 GB of logits; TRL's fused head holds one 4096 x 32768 tile
    assert cpu_like.memory_gb["logits"] > 10 and gpu.memory_gb["logits"] < 0.5
    qlora = dataclasses.replace(get_preset("mistral-qlora-alpaca"), use_unsloth="auto")
    peft_qlora = estimate(qlora, examples=100, device=A10G, backend="transformers+peft")
    unsloth_qlora = estimate(qlora, examples=100, device=A10G, backend="unsloth")
    unquantized = 2 * 32000 * 4096  # parameters of Mistral's untied embedding and head: fp32 (4 bytes) vs bf16 (2)
    saved_gb = peft_qlora.memory_gb["weights"] - unsloth_qlora.memory_gb["weights"]
    assert saved_gb == pytest.approx(unquantized * (4 - 2) / 1024**3, rel=0.01)
    assert unsloth_qlora.memory_gb["activations"] < peft_qlora.memory_gb["activations"]  # layer inputs go to CPU
    assert (peft_qlora.backend, unsloth_qlora.backend) == ("transformers+peft", "unsloth")
