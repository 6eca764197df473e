"""In what precision a chat model loads: full (bf16/fp16 on a GPU, fp32 on a CPU), 8-bit or 4-bit.

Seed 002 served its model with `load_in_8bit=True`. bitsandbytes quantizes every linear layer but
the output head, on CUDA only; embeddings and norms stay in the compute dtype. `plan_load` works out,
from the model's config alone, what each precision would take on this device and, in "auto", picks
the first that fits the free memory, so the Chat tab and `training chat` can say why a model loads
the way it does before it loads.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import torch

from training.errors import UserError

LOAD_MODES = ("auto", "full", "8bit", "4bit")
LABELS = {"8bit": "8-bit", "4bit": "4-bit"}  # full precision is labelled by its dtype
GB = 1024**3
RUNTIME_GB = 0.8  # CUDA context, cuBLAS workspaces, allocator slack (as in the training estimate)
REPLY_CONTEXT = 2048  # tokens of key/value cache a chat keeps at most (prompt + reply)
FIT_SHARE = 0.9  # leave a tenth of the free memory: the cache and other tabs' models grow
BYTES_PER_WEIGHT = {"8bit": 1.03, "4bit": 0.53}  # int8 + row scales; nf4 + double-quantised scales


@dataclass(frozen=True)
class LoadPlan:
    mode: str  # "full", "8bit" or "4bit": what will be loaded
    dtype: str  # "bf16", "fp16" or "fp32": full-precision weights and the compute dtype
    need_gb: dict[str, float] = field(default_factory=dict)  # per mode, weights + runtime; empty = unknown
    free_gb: float | None = None  # free memory of the GPU; None on a CPU
    note: str = ""  # one line for a person: what loads, how big, and why

    @property
    def label(self) -> str:
        return LABELS.get(self.mode, self.dtype)


def plan_load(model_config: Any, requested: str, device: str) -> LoadPlan:
    """The precision to load in on `device` ("cpu", "cuda", "cuda:1"), with the memory it needs."""
    if requested not in LOAD_MODES:
        raise UserError(f"load_in: {requested!r} is not one of {', '.join(LOAD_MODES)}")
    cuda = device.startswith("cuda")
    dtype = "fp32" if not cuda else "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    need = memory_needed(model_config, cuda)
    if not cuda:
        about = f" (about {size(need['full'])})" if need else ""
        if requested in ("8bit", "4bit"):
            raise UserError(
                f"load_in {requested}: 8-bit and 4-bit loading need a CUDA GPU (bitsandbytes' kernels run "
                f"there); this machine has none, so the model loads in fp32{about}; choose auto or full"
            )
        return LoadPlan("full", dtype, need, None, f"fp32 on the CPU{about}: no CUDA GPU, so no 8-bit or 4-bit")
    has_bitsandbytes = bitsandbytes_installed()
    if requested in ("8bit", "4bit") and not has_bitsandbytes:
        raise UserError(f"load_in {requested}: needs bitsandbytes; pip install -r requirements-gpu.txt")
    free = torch.cuda.mem_get_info(torch.device(device))[0] / GB
    if requested != "auto":
        return LoadPlan(requested, dtype, need, free, _note(requested, dtype, need, free, "as asked"))
    modes = ("full", "8bit", "4bit") if has_bitsandbytes else ("full",)
    fitting = [mode for mode in modes if need and need[mode] <= free * FIT_SHARE]
    if fitting:
        chosen = fitting[0]
        why = "it fits" if chosen == "full" else f"{dtype} would need about {size(need['full'])}"
    else:
        chosen = modes[-1]
        why = "size unknown" if not need else "the smallest there is; it may not fit"
    return LoadPlan(chosen, dtype, need, free, _note(chosen, dtype, need, free, why))


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def _note(mode: str, dtype: str, need: dict[str, float], free: float, why: str) -> str:
    label = LABELS.get(mode, dtype)
    needed = f" about {size(need[mode])}," if need else ""
    return f"{label} ({why}):{needed} {size(free)} free on the GPU"


def describe(plan: LoadPlan) -> str:
    """The plan as one markdown line: what loads and why, then what each precision would take."""
    sizes = " · ".join(f"{LABELS.get(mode, plan.dtype)} {size(gb)}" for mode, gb in plan.need_gb.items())
    if plan.free_gb is None:  # on a CPU only full precision exists
        return f"Loads in **{plan.note}**"
    return f"Loads in **{plan.note}**" + (f" · needs: {sizes}" if sizes else "")


def size(gb: float) -> str:
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb * 1024:.0f} MB"


def memory_needed(model_config: Any, cuda: bool) -> dict[str, float]:
    """GB each mode takes: weights by precision, the key/value cache of one reply, and (CUDA) runtime.

    Parameters are counted on PyTorch's meta device (nothing allocated). {} when the architecture
    cannot be built from its config.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    loader = AutoModelForSeq2SeqLM if getattr(model_config, "is_encoder_decoder", False) else AutoModelForCausalLM
    try:
        with torch.device("meta"):
            model = loader.from_config(model_config)
    except Exception:  # noqa: BLE001 - an unusual architecture: say "size unknown" rather than fail to chat
        return {}
    head = model.get_output_embeddings()
    total = sum(p.numel() for p in model.parameters())
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    full = 2 if cuda else 4
    extra = _cache_bytes(model_config, full) / GB + (RUNTIME_GB if cuda else 0.0)
    need = {"full": total * full / GB + extra}
    for mode, per_weight in BYTES_PER_WEIGHT.items():
        need[mode] = (linear * per_weight + (total - linear) * full) / GB + extra
    return need


def _cache_bytes(model_config: Any, element: int) -> float:
    from training.train.footprint import dims

    try:
        _, layers, _, kv, _ = dims(model_config)
    except AttributeError:
        return 0.0
    return 2 * layers * kv * REPLY_CONTEXT * element  # keys and values


def load_arguments(plan: LoadPlan, device: str) -> dict[str, Any]:
    """from_pretrained arguments for the plan: the dtype, and for 8/4-bit the quantization and placement."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[plan.dtype]
    if plan.mode == "full":
        return {"dtype": dtype}
    from transformers import BitsAndBytesConfig

    if plan.mode == "8bit":
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    # Quantized weights are placed while loading and cannot be moved afterwards.
    return {"dtype": dtype, "quantization_config": quantization, "device_map": {"": torch.device(device).index or 0}}
