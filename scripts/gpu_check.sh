#!/usr/bin/env bash
# The CUDA checks, in one prepared run, for a machine with an NVIDIA GPU. Never part of CI.
#
#   scripts/gpu_check.sh [OUT_DIR]        (default: $OUT if set, else ./gpu-check)
#
# Environment: MODEL (a model name or folder; default emoji), DATA (a dataset folder for the training benchmark;
# default data/emoji-usem3-kw, the step is skipped without one), TRAIN_CONFIGS (CHxBATCH list) and TRAIN_STEPS
# (benchmarks/train_bench.py), PYTEST_IGNORE (more test files to leave out, space-separated).
#
# 1. a torch that sees the GPU: .venv's or python3's if either does, else `pip install torch` into .venv-cuda
#    (needs a package registry; on an offline machine the step says so and the rest is skipped);
# 2. `gan-studio info` and the engine benchmark on CUDA in float32 (the default there since session 51) and in
#    float16 autocast -> info.json, engine_cuda.json, engine_cuda_fp16.json;
# 3. four prompts x four seeds rendered on CUDA in float16 and float32, PNGs with their parameters -> pixels.tar
#    (compare them with the same prompts and seeds rendered on a CPU);
# 4. the base stage's training speed per width and batch on CUDA -> train_bench.json;
# 5. the test suite with GAN_STUDIO_DEVICE=cuda -> pytest.txt (the window tests only where Qt is installed);
# and summary.json with each step's exit code and seconds: eight files at most. Each step runs even if an earlier
# one failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
model=${MODEL:-emoji}
data=${DATA:-data/emoji-usem3-kw}
mkdir -p "$out"
summary=()
step_tag=gpu_check
# shellcheck source=scripts/gpu_steps.sh
source scripts/gpu_steps.sh
sees_gpu() { "$1" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

python=
for candidate in .venv/bin/python python3; do
  if command -v "$candidate" >/dev/null && sees_gpu "$candidate"; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  [ -x .venv-cuda/bin/python ] || python3 -m venv .venv-cuda
  step install_cuda_torch .venv-cuda/bin/python -m pip install -q torch -e '.[test]'
  python=.venv-cuda/bin/python
fi
if ! sees_gpu "$python"; then
  echo "[gpu_check] torch cannot see a GPU here; nothing else to check." >&2
  printf '{%s, "cuda": false}\n' "$(IFS=,; echo "${summary[*]:-\"install_cuda_torch\": {\"rc\": 1}}")" >"$out/summary.json"
  exit 1
fi
export GAN_STUDIO_DEVICE=cuda QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
step info sh -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >&2; \
  '$python' -m studio info --model '$model' --json >'$out/info.json'"
step engine_bench sh -c "'$python' -m studio bench --model '$model' --device cuda >'$out/engine_cuda.json'"
step engine_bench_fp16 sh -c "GAN_STUDIO_DTYPE=float16 '$python' -m studio bench --model '$model' --device cuda --quick \
  >'$out/engine_cuda_fp16.json'"
pixels=$(mktemp -d)
render_all() {  # the same prompts and seeds in both precisions, PNGs under $pixels/DTYPE/PROMPT/, then one tar
  local dtype prompt
  for dtype in float16 float32; do
    for prompt in "red apple" "grinning face" "rocket" "cat face"; do
      GAN_STUDIO_DTYPE=$dtype "$python" -m studio generate --model "$model" --device cuda -n 4 --seed 0 \
        --no-spread --out "$pixels/$dtype/${prompt// /-}" "$prompt" >/dev/null || return 1
    done
  done
  tar -C "$pixels" -cf "$out/pixels.tar" .
}
step pixels render_all
if [ -f "$data/emoji.npz" ]; then
  step train_bench sh -c "'$python' benchmarks/train_bench.py --data '$data' --device cuda \
    --configs '${TRAIN_CONFIGS:-16x32,16x256,32x32,32x256}' --steps '${TRAIN_STEPS:-300}' >'$out/train_bench.json'"
else
  echo "[gpu_check] no dataset at $data: the training benchmark is skipped" >&2
fi
ignore=()
if ! "$python" -c 'import PySide6' 2>/dev/null; then
  ignore+=(--ignore-glob='tests/test_ui_*.py' --ignore=tests/test_hardening_inputs.py)
fi
for path in ${PYTEST_IGNORE:-}; do ignore+=(--ignore="$path"); done
step tests sh -c "'$python' -m pytest -q -p no:cacheprovider ${ignore[*]} >'$out/pytest.txt' 2>&1"
printf '{%s, "cuda": true}\n' "$(IFS=,; echo "${summary[*]}")" >"$out/summary.json"
cat "$out/summary.json"
