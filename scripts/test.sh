#!/usr/bin/env bash
# Install everything the tests need, then run them: the one command for a newcomer and for CI.
#
#   scripts/test.sh                      # the whole suite
#   scripts/test.sh tests/test_browser_journey.py -q   # any pytest arguments
#
# The browser tests drive Debian's Chromium (Playwright cannot download browsers on machines
# without general internet access), so it is installed here when missing. Without it those tests
# skip on a workstation and fail under CI (CI=1).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
CHROMIUM="${TALKLIKE_CHROMIUM:-/usr/bin/chromium}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "scripts/test.sh: not root and no sudo: cannot run '$*'" >&2
    return 1
  fi
}

install_chromium() {
  command -v apt-get >/dev/null 2>&1 || { echo "scripts/test.sh: no apt-get here" >&2; return 1; }
  echo "Installing Chromium for the browser tests (Debian package, about 35 s)..."
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

if [ ! -x "$CHROMIUM" ]; then
  # Not fatal: the tests themselves say what is missing (skip locally, fail under CI).
  install_chromium || echo "scripts/test.sh: Chromium not installed; install it yourself or set TALKLIKE_CHROMIUM." >&2
fi

# On a machine without an NVIDIA GPU, take torch from the CPU wheel index first, as the README
# says: PyPI's Linux torch wheel would pull gigabytes of CUDA libraries.
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
  torch_pin="$(grep -E '^torch==' requirements.txt | cut -d'#' -f1 | tr -d ' ')"
  echo "Installing CPU-only ${torch_pin}..."
  # --extra-index-url: the CPU wheel (2.13.0+cpu) outranks the CUDA one, and an unreachable index
  # (or a local wheel folder in the pip config) still works.
  "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore "$torch_pin" --extra-index-url https://download.pytorch.org/whl/cpu
fi

"$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements.txt -r requirements-dev.txt
# Lint and formatting first (pyproject.toml holds the rules): a finding stops here, before the long suite.
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
exec "$PYTHON" -m pytest "$@"
