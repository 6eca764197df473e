"""What bench/gpu_check.py needs before its rows: the prepared sample, the models it trains (a real
or random offline-small, a random ~0.8B Llama), and the packages and machine it runs on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_steps import LARGE_SHAPE, MINI_SHAPE, ROOT, child_environment, llama_config, random_model

if TYPE_CHECKING:
    from gpu_check import Check

CARRIED = ROOT / ".gpu"  # what bench/gpu_carry.sh prepared: wheels and the SmolLM2 config + tokenizer


def prepare_data(check: Check) -> Path:
    """The bundled sample through `python -m training prepare`, as a user would run it."""
    train_file = check.work / "persona.jsonl"
    if not train_file.exists():
        args = [
            "prepare",
            str(ROOT / "samples" / "sam_messenger_export.zip"),
            "--me",
            "Sam Rivera",
            "--out",
            str(train_file),
        ]
        done = check.run(args, "prepare")
        if done.returncode != 0:
            raise SystemExit(f"prepare failed: {done.error_line()}")
    return train_file


def build_models(check: Check) -> dict[str, dict[str, str]]:
    """{"small": ..., "large": ...}: each a folder and what it is."""
    import torch

    if check.dry_run:
        from training.models import tiny_model_path

        os.environ["TALKLIKE_DATA_DIR"] = str(check.work / "data")
        tiny = tiny_model_path()
        mini = random_model(check.work / "llama-mini", tiny, llama_config(tiny, MINI_SHAPE), "cpu")
        return {
            "small": {"path": str(tiny), "about": "offline-tiny (random, ~5M parameters)"},
            "large": {"path": str(mini), "about": "a mini random Llama built from a config (the large row's code)"},
        }
    small = _small_model(check)
    large = random_model(
        check.work / "llama-0.8b", Path(small["path"]), llama_config(Path(small["path"]), LARGE_SHAPE), "cuda"
    )
    torch.cuda.empty_cache()
    return {
        "small": small,
        "large": {"path": str(large), "about": "random Llama, ~0.78B parameters, SmolLM2's tokenizer"},
    }


def _small_model(check: Check) -> dict[str, str]:
    """offline-small with its real weights where this machine has it; else its exact architecture
    and tokenizer (carried by gpu_carry.sh) with random weights, which train at the same speed
    and in the same memory but make the losses meaningless."""
    from transformers import AutoConfig

    real = offline_small_folder()
    if real is not None:
        return {"path": str(real), "about": "offline-small (SmolLM2-135M-Instruct, real weights)"}
    carried = CARRIED / "smollm2"
    if not (carried / "config.json").is_file():
        raise SystemExit(
            f"{carried}: missing; run bash bench/gpu_carry.sh first (it brings SmolLM2's config and tokenizer)"
        )
    folder = random_model(check.work / "smollm2-random", carried, AutoConfig.from_pretrained(carried), "cuda")
    return {
        "path": str(folder),
        "about": "SmolLM2-135M-Instruct's config and tokenizer, random weights (real ones do not fit the carry)",
    }


def offline_small_folder() -> Path | None:
    """The converted offline-small model, if this machine's data folder already has it."""
    from training.paths import subdir

    folder = subdir("models") / "offline-small"
    return folder if (folder / "config.json").is_file() else None


def missing_packages(check: Check) -> str | None:
    """Import what the rows need in a fresh process (as each row will); the error if that fails."""
    import subprocess

    code = "import trl, datasets, peft, bitsandbytes, pyarrow; print(pyarrow.__version__)"
    env = child_environment(check.work / "data", dry_run=False)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode == 0:
        return None
    return "importing trl, datasets, peft, bitsandbytes failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]


def environment(check: Check) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    import torch

    names = (
        "torch",
        "transformers",
        "trl",
        "peft",
        "datasets",
        "accelerate",
        "bitsandbytes",
        "unsloth",
        "unsloth_zoo",
        "triton",
        "torchvision",
        "pyarrow",
        "xformers",
    )
    described = check.gpu.describe()
    return {
        "python": sys.version.split()[0],
        "cuda": torch.version.cuda,
        "packages": {n: installed(n) for n in names},
        "gpu": None if described is None else {"name": described[0], "memory_gb": round(described[1], 1)},
        "cpu_count": os.cpu_count(),
    }
