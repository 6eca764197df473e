"""Publish this repository as a Hugging Face Space (what .github/workflows/deploy-space.yml runs).

    HF_TOKEN=hf_... python scripts/deploy_space.py you/talklike [--gpu] [--owner YOUR_HF_NAME]

Uploads the app (app.py, components/, training/, samples/, README.md with its Space front matter)
and a requirements.txt chosen for the hardware: with --gpu, requirements.txt plus
requirements-gpu.txt (Unsloth, bitsandbytes), so a CPU install never pulls CUDA packages while a
GPU Space gets them. --owner sets the Space variable TALKLIKE_OWNER: only that signed-in user may
use Data/Train/Export (hf_oauth is on in the front matter); chat stays open.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["app.py", "components", "training", "samples", "README.md", "LICENSE"]
IGNORED = ["**/__pycache__/**", "**/*.pyc"]


def stage(target: Path, gpu: bool) -> Path:
    """The files the Space runs, in `target`."""
    for name in SHIPPED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target / name)
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    if gpu:
        requirements += "\n" + (ROOT / "requirements-gpu.txt").read_text(encoding="utf-8")
    (target / "requirements.txt").write_text(requirements, encoding="utf-8")
    return target


def deploy(space_id: str, gpu: bool, owner: str | None, token: str | None = None, endpoint: str | None = None) -> str:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=False)
    with tempfile.TemporaryDirectory() as folder:
        api.upload_folder(
            folder_path=stage(Path(folder), gpu),
            repo_id=url.repo_id,
            repo_type="space",
            commit_message="Deploy talklike",
            ignore_patterns=IGNORED,
        )
    if owner:
        api.add_space_variable(url.repo_id, "TALKLIKE_OWNER", owner)
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help="the Space id, e.g. you/talklike")
    parser.add_argument("--gpu", action="store_true", help="add Unsloth and bitsandbytes (GPU hardware)")
    parser.add_argument("--owner", help="Hugging Face user who alone may train and export on the Space")
    args = parser.parse_args(argv)
    try:
        print(deploy(args.space, args.gpu, args.owner))
    except Exception as error:  # noqa: BLE001 - a deploy tool reports the one line that matters
        from training.export.hub import scrub

        print(f"error: {scrub(str(error), None)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
