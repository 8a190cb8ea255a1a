#!/usr/bin/env bash
# Set up .venv on first use and open GAN Studio on the shipped default model. Extra args go to gan-studio.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/gan-studio ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if command -v nvidia-smi >/dev/null 2>&1 || [ -n "${GAN_STUDIO_CUDA:-}" ]; then
    # An NVIDIA GPU: PyPI's default Linux torch is the CUDA build.
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  else
    # No GPU: the CPU build pinned for CI (much smaller where it is available locally).
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints/ci.txt -e .
  fi
fi
exec .venv/bin/gan-studio "$@"
