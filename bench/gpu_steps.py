"""The GPU check's steps: build its models, and run `python -m training ...` while measuring it.

Every step is a fresh process started the way a user starts it (the CLI), so Unsloth is imported
first in each training process as it would be, and each process's memory is its own: the peak GPU
memory is read through NVML (what nvidia-smi shows, CUDA context included) above what was in use
before the process started, and the peak resident memory of the process and its children with psutil.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
)


class GpuMemory:
    """Memory in use on GPU 0 through NVML (nvidia-ml-py), or None everywhere without one."""

    def __init__(self) -> None:
        self.handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVIDIA driver or no nvidia-ml-py: measure RSS only
            self.handle = None

    def used_mb(self) -> float | None:
        return None if self.handle is None else self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / MB

    def describe(self) -> tuple[str, float] | None:
        """(name, total GB) of GPU 0."""
        if self.handle is None:
            return None
        name = self.nvml.nvmlDeviceGetName(self.handle)
        name = name.decode() if isinstance(name, bytes) else name
        return name, self.nvml.nvmlDeviceGetMemoryInfo(self.handle).total / 1024**3


@dataclass
class Measured:
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    peak_gpu_mb: float | None  # device memory above what was in use before the process started
    peak_rss_mb: float

    def error_line(self) -> str:
        """The one line a user reads when the command fails (`error: ...`), else the last line."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        return (errors or lines or [f"exit {self.returncode}"])[-1][:300]

    def talklike_lines(self) -> list[str]:
        return [
            line.removeprefix("talklike: ")
            for line in (self.stdout + "\n" + self.stderr).splitlines()
            if line.startswith("talklike: ")
        ]


def run_measured(args: list[str], log: Path, gpu: GpuMemory, env: dict[str, str], timeout: float) -> Measured:
    """Run `python -m training ARGS`, sampling its memory every 0.1 s; its output goes to `log` too."""
    baseline = gpu.used_mb()
    peak_gpu, peak_rss = 0.0, 0.0
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log.with_suffix(".out"), "w+") as out, open(log, "w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "training", *args], cwd=ROOT, env=env, stdout=out, stderr=err)
        while process.poll() is None:
            peak_rss = max(peak_rss, _tree_rss_mb(process.pid))
            used = gpu.used_mb()
            if used is not None and baseline is not None:
                peak_gpu = max(peak_gpu, used - baseline)
            if time.perf_counter() - started > timeout:
                process.kill()
                err.write(f"\nerror: killed after {timeout:.0f} s (the check's time budget)\n")
            time.sleep(0.1)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    seconds = time.perf_counter() - started
    return Measured(process.returncode, seconds, stdout, stderr, peak_gpu if baseline is not None else None, peak_rss)


def run_in_process(args: list[str], log: Path, env: dict[str, str]) -> Measured:
    """The dry run's runner: `python -m training ARGS` as training.cli.main(ARGS), the function that
    command runs, inside this process, so the imports are paid once. No memory is measured: the
    process holds every step before it."""
    from contextlib import redirect_stderr, redirect_stdout

    from training.cli import main

    saved = dict(os.environ)
    os.environ.update(env)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with open(log.with_suffix(".out"), "w+") as out, open(log, "w+") as err:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(args)
                except SystemExit as exit:  # the train command exits 2 on a failed run
                    code = exit.code if isinstance(exit.code, int) else 1
            out.seek(0)
            err.seek(0)
            return Measured(code, time.perf_counter() - started, out.read(), err.read(), None, 0.0)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pack_logs(work: Path, out: Path) -> None:
    """Every step's output as out/logs.tar.gz (one file: the device tool brings back at most eight)."""
    import tarfile

    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for log in sorted((work / "logs").glob("*")):
            archive.add(log, arcname=log.name)


def _tree_rss_mb(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / MB
    except psutil.Error:  # ended between poll() and here
        return 0.0


def child_environment(data_dir: Path, dry_run: bool, hide_unsloth: Path | None = None) -> dict[str, str]:
    """The environment of every step: offline, its own data folder, and no GPU in a dry run."""
    env = {
        **os.environ,
        "TALKLIKE_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if hide_unsloth is not None:  # a stand-in package that fails to import, ahead of the real one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hide_unsloth), env.get("PYTHONPATH", "")]))
    return env


def unimportable_unsloth(folder: Path) -> Path:
    """A folder holding an `unsloth` package whose import fails, as on a machine without Unsloth."""
    package = folder / "unsloth"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('raise ImportError("unsloth hidden by bench/gpu_check.py")\n')
    return folder


# ---- models ------------------------------------------------------------------------------------------


LARGE_SHAPE = {
    "hidden_size": 1536,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
}  # ~0.78B parameters with SmolLM2's 49,152-token vocabulary
MINI_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}  # the dry run's stand-in: same code, CPU-sized


def random_model(out: Path, tokenizer_dir: Path, config: Any, device: str) -> Path:
    """Random weights for `config`, saved in bf16 (fp32 on a CPU) with `tokenizer_dir`'s tokenizer files."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    if (out / "config.json").exists():
        return out
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, out / name)
    del model
    return out


def llama_config(tokenizer_dir: Path, shape: dict[str, int]):
    """A Llama of `shape` whose vocabulary and special tokens are the tokenizer's."""
    from transformers import AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.eos_token_id
    return LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos,
        eos_token_id=eos,
        **shape,
    )


def parameter_count(folder: Path) -> int:
    """Parameters in a folder's safetensors files, read from their headers (nothing loaded)."""
    total = 0
    for path in folder.glob("*.safetensors"):
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for size in entry["shape"]:
                    count *= size
                total += count
    return total


def lora_keys(folder: Path) -> int:
    """Adapter tensors left in a folder's safetensors: a merged export has none."""
    keys = 0
    for path in folder.glob("*.safetensors"):
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        keys += sum("lora_" in name for name in header)
    return keys
