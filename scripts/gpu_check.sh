#!/usr/bin/env bash
# The CUDA checks, in one prepared run, for the first machine that has an NVIDIA GPU. Never part of CI.
#
#   scripts/gpu_check.sh [OUT_DIR]        (default: $OUT if set, else ./gpu-check)
#
# 1. a CUDA build of torch: the one installed if it sees the GPU, else `pip install torch` into .venv-cuda
#    (needs a package registry; on an offline machine the step says so and the rest is skipped);
# 2. `gan-studio info` and the engine benchmark on CUDA (float16 vs float32 speed and pixel difference,
#    previews/s, engine vs raw forward) -> engine_cuda.json;
# 3. the test suite with GAN_STUDIO_DEVICE=cuda -> pytest.txt;
# 4. a 3-minute training smoke run of the base stage on the GPU (dataset built first if missing) -> train.txt;
# and a summary.json with each step's exit code and seconds. Each step runs even if an earlier one failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
summary=()
step() {  # step NAME COMMAND...: run, time, record the exit code
  local name=$1 started rc
  shift
  started=$(date +%s.%N)
  "$@"
  rc=$?
  summary+=("\"$name\": {\"rc\": $rc, \"seconds\": $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')}")
  echo "[gpu_check] $name: exit $rc" >&2
}

nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "[gpu_check] nvidia-smi failed: is this a GPU machine?" >&2
python=.venv/bin/python
[ -x "$python" ] || python=python3
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  [ -x .venv-cuda/bin/python ] || python3 -m venv .venv-cuda
  step install_cuda_torch .venv-cuda/bin/python -m pip install -q torch -e '.[test]'
  python=.venv-cuda/bin/python
fi
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "[gpu_check] torch cannot see a GPU here; nothing else to check." >&2
  printf '{%s, "cuda": false}\n' "$(IFS=,; echo "${summary[*]:-\"install_cuda_torch\": {\"rc\": 1}}")" >"$out/summary.json"
  exit 1
fi
export GAN_STUDIO_DEVICE=cuda QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
step info sh -c "'$python' -m studio info --json >'$out/info.json'"
step engine_bench sh -c "'$python' -m studio bench --device cuda >'$out/engine_cuda.json'"
step engine_bench_fp32 sh -c "GAN_STUDIO_DTYPE=float32 '$python' -m studio bench --device cuda --quick >'$out/engine_cuda_fp32.json'"
step tests sh -c "'$python' -m pytest -q -x -p no:cacheprovider >'$out/pytest.txt' 2>&1"
[ -f data/emoji/emoji.npz ] || step dataset sh -c "'$python' -m studio dataset build --out data/emoji >'$out/dataset.txt' 2>&1"
step train_smoke sh -c "'$python' -m studio train --data data/emoji --out '$out/smoke-model' --run-dir '$out/smoke-run' \
  --stage base --device cuda --minutes 3 --checkpoint-minutes 1 >'$out/train.txt' 2>&1"
printf '{%s, "cuda": true}\n' "$(IFS=,; echo "${summary[*]}")" >"$out/summary.json"
cat "$out/summary.json"
